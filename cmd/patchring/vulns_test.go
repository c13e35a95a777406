package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/apitypes"
)

// serveJSON answers the local API's GET routes with fixed documents on a
// unix socket, as patchringd would.
func serveJSON(t *testing.T, routes map[string]any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := routes[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(apitypes.Error{Error: "not found", Code: apitypes.CodeNotFound})
			return
		}
		_ = json.NewEncoder(w).Encode(doc)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func TestVulnsAndUpdatesShowCVEs(t *testing.T) {
	v := apitypes.Vulns{
		Advisories: apitypes.AdvisoryState{Version: 4, Built: "2026-12-04T00:00:00Z", Entries: 12, KEVCatalog: "2026.12.03"},
		Findings: []apitypes.VulnFinding{
			{Package: "libfoo1", Version: "1.1-1", ID: "CVE-2026-0001", Severity: "critical", Score: 9.8, KEV: true, FixedIn: "1.2-1", Fix: "pending", Update: "1.2-1"},
			{Package: "libfoo1", Version: "1.1-1", ID: "CVE-2026-0004", Severity: "medium", FixedIn: "1.2-1", Fix: "pending", Update: "1.2-1"},
			{Package: "bar", Version: "2.0-1", ID: "CVE-2026-0002", Severity: "high", Fix: "none"},
		},
		CPU:     []apitypes.CPUVuln{{Name: "mds", Status: "vulnerable"}},
		Summary: apitypes.VulnSummary{Critical: 1, High: 1, Medium: 1, KEV: 1, NoFix: 1, CPU: 1, Version: 4},
	}
	u := apitypes.Updates{Updates: []apitypes.UpdateDecision{{Source: "apt", Package: "libfoo1", Installed: "1.1-1", Version: "1.2-1", Action: "install-now", Reason: "kev"}}}
	sock := serveJSON(t, map[string]any{"/v1/vulns": v, "/v1/updates": u})
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		a := &app{Out: &out, Err: &out, In: strings.NewReader(""), Socket: sock}
		root := newRootCmd(a)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("patchring %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	out := run("vulns")
	for _, want := range []string{"version 4", "1 critical, 1 high, 1 medium", "CVE-2026-0001", "critical 9.8", "KEV", "pending", "none", "CPU vulnerable (kernel): mds"} {
		if !strings.Contains(out, want) {
			t.Errorf("vulns output lacks %q:\n%s", want, out)
		}
	}
	var back apitypes.Vulns
	if err := json.Unmarshal([]byte(run("vulns", "-o", "json")), &back); err != nil || len(back.Findings) != 3 {
		t.Errorf("vulns -o json: %v %+v", err, back)
	}
	out = run("updates")
	if !strings.Contains(out, "2 (critical, KEV) CVE-2026-0001,CVE-2026-0004") {
		t.Errorf("updates does not show the CVEs the update fixes:\n%s", out)
	}
}
