package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/internal/testutil/consoletest"
)

// TestConsoleImport: an offline site's records (the file export-reports
// writes) load into the console with the ingest API's checks: stored once,
// duplicates on a second import, a record changed after signing refused,
// and a file that is not a reports bundle refused whole.
func TestConsoleImport(t *testing.T) {
	base := t.TempDir()
	data := filepath.Join(base, "console")
	var raws []json.RawMessage
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 3 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		key := ed25519.NewKeyFromSeed(seed)
		id := report.NodeID(key.Public().(ed25519.PublicKey))
		pkgs := []report.Package{{Name: "openssl", Version: "3.0.15-1", Arch: "amd64"}}
		for seq := uint64(1); seq <= 2; seq++ {
			r := report.Record{V: report.Version, Node: id, Seq: seq, Time: now.Add(time.Duration(seq) * time.Minute), Site: "offshore", Hostname: "rig-" + string(rune('a'+i)),
				Ring: "broad", State: "idle", Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs)}
			env, err := report.Sign(r, key)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(env)
			raws = append(raws, raw)
		}
	}
	write := func(name string, recs []json.RawMessage) string {
		b, _ := json.Marshal(apitypes.ReportExport{Records: recs})
		p := filepath.Join(base, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("reports.json", raws)
	out := mustCLI(t, "console", "import", file, "--data", data)
	if !strings.Contains(out, "6 stored, 0 duplicate, 0 refused") {
		t.Fatalf("first import:\n%s", out)
	}
	out = mustCLI(t, "console", "import", file, "--data", data)
	if !strings.Contains(out, "0 stored, 6 duplicate, 0 refused") {
		t.Fatalf("second import:\n%s", out)
	}
	// A record whose payload was changed after signing.
	var env report.Envelope
	if err := json.Unmarshal(raws[0], &env); err != nil {
		t.Fatal(err)
	}
	env.Payload = []byte(strings.Replace(string(env.Payload), `"state":"idle"`, `"state":"failed"`, 1))
	forged, _ := json.Marshal(env)
	out = mustCLI(t, "console", "import", write("forged.json", []json.RawMessage{forged}), "--data", data)
	if !strings.Contains(out, "0 stored, 0 duplicate, 1 refused") || !strings.Contains(out, "bad signature") {
		t.Fatalf("forged import:\n%s", out)
	}
	bad := filepath.Join(base, "bad.json")
	os.WriteFile(bad, []byte(`{"rows": []}`), 0o600)
	if out, err := runCLIWithInput(t, "", "console", "import", bad, "--data", data); err == nil || !strings.Contains(err.Error(), "not a reports bundle") {
		t.Fatalf("a file that is not a bundle: %v\n%s", err, out)
	}
	st := consoletest.OpenStore(t, data)
	n, err := st.Count(t.Context())
	if err != nil || n.Nodes != 3 || n.Records != 6 {
		t.Fatalf("console holds %+v (%v), want 3 nodes and 6 records", n, err)
	}
	audit, err := st.AuditLog(t.Context(), 10)
	if err != nil || len(audit) == 0 || audit[0].Action != "import reports" {
		t.Fatalf("audit %+v %v", audit, err)
	}
}
