package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil/consoletest"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// TestExportOfflineSite: a site that never reaches its console keeps its
// records; Export on any member collects every member's, and a console
// that receives them (as patchring console import does) stores them once:
// a second export counts as duplicates.
func TestExportOfflineSite(t *testing.T) {
	ca := credtest.NewCA(t)
	c := consoletest.Start(t, fleetOf(ca.Trust(t, credential.Revocations{})))
	s := newSite(t, ca, 3, "https://console.invalid", 1)
	offline := func() (Console, bool) { return Console{}, false }
	for _, a := range s.agents {
		a.rep.cfg.Console = offline
	}
	var failed *agent
	for _, a := range s.agents {
		failed = a
		break
	}
	for i := range 2 {
		if i == 1 {
			failed.mu.Lock()
			failed.state = "failed"
			failed.outs = append(failed.outs, report.Outcome{Source: "apt", Package: "openssl", Version: "3.0.15-1", Result: report.ResultFailed, Reason: "postinst exited 1", At: time.Now()})
			failed.mu.Unlock()
		}
		if err := s.round(t); err != nil {
			t.Fatal(err)
		}
	}
	var exporter *agent
	for _, a := range s.agents {
		if a != failed {
			exporter = a
			break
		}
	}
	envs, err := exporter.rep.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, e := range envs {
		r, _, err := report.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		nodes[r.Node] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("export holds records of %d nodes, want 3", len(nodes))
	}
	post := func(envs []report.Envelope) map[string]int {
		t.Helper()
		body, _ := json.Marshal(struct {
			Records []report.Envelope `json:"records"`
		}{envs})
		resp, err := http.Post(c.URL()+"/api/v1/ingest", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out ingestResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, r := range out.Results {
			n[r.Status]++
		}
		return n
	}
	if got := post(envs); got["stored"] != len(envs) {
		t.Fatalf("import: %v, want %d stored", got, len(envs))
	}
	node, err := c.Store.Node(t.Context(), failed.id)
	if err != nil || node.State != "failed" {
		t.Fatalf("the failed node at the console: %+v %v", node, err)
	}
	again, err := exporter.rep.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := post(again); got["stored"] > 1 || got["duplicate"] < len(envs) {
		// The exporter signs one more record only if its state changed.
		t.Fatalf("second import: %v, want the first export's %d records as duplicates", got, len(envs))
	}
}
