package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// TestPrintEffectivePolicyNewerFields: `policy show` prints who may
// restart on demand, the ring's gates (with what they do on too few
// reports) and the transactions block, not only the older fields.
func TestPrintEffectivePolicyNewerFields(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	p := apitypes.EffectivePolicy{
		Version: "v7", Name: "acme", Expires: at.Add(30 * 24 * time.Hour), MetadataExpires: at.Add(24 * time.Hour),
		Verified: at, Source: "origin", Ring: "pilot", RingWhy: "tag early-adopter", Defer: "48h0m0s",
		Gates: []apitypes.GatePolicy{
			{Ring: "lab", MinSuccess: 95, MinNodes: 3, TooFewReports: "open", OpenAfter: "3d"},
			{Ring: "qa", MinSuccess: 100, MinNodes: 1, TooFewReports: "wait"},
		},
		Reboot:       apitypes.RebootPolicy{NotifyAhead: "15m0s", MaxDeferrals: 2, Deadline: "48h0m0s", Grace: "8h0m0s", UserRestart: "none"},
		Transactions: apitypes.TransactionsPolicy{AllowRemove: []string{"linux-image-*"}, WithoutRollback: []string{"tzdata", "ca-*"}},
	}
	var out bytes.Buffer
	printEffectivePolicy(&out, p)
	got := out.String()
	for _, want := range []string{
		"Restart now:   root and the admin group only (user_restart: none)\n",
		"Gates:         wait for ring lab: 95% success over at least 3 reports; with fewer reports: open 3d after the update is first seen\n",
		"               wait for ring qa: 100% success over at least 1 reports; with fewer reports: wait for them\n",
		"Transactions:  may remove linux-image-*; may change without a rollback payload tzdata, ca-*\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}

	// The defaults are spelled out too.
	p.Gates, p.Transactions, p.Reboot.UserRestart = nil, apitypes.TransactionsPolicy{}, "session"
	out.Reset()
	printEffectivePolicy(&out, p)
	got = out.String()
	for _, want := range []string{
		"Restart now:   root, the admin group and the user of an active local session (user_restart: session)\n",
		"Gates:         none\n",
		"Transactions:  may remove none; may change without a rollback payload none\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestPolicyExplainNewerFields: `policy explain` of the example policy
// for a pilot node prints and returns (-o json) reboot.user_restart, the
// ring's gates with too_few_reports and open_after, and transactions.
func TestPolicyExplainNewerFields(t *testing.T) {
	facts := filepath.Join(t.TempDir(), "facts.json")
	if err := os.WriteFile(facts, []byte(`{"node_id": "n1", "hostname": "web-1", "site": "hq", "tags": ["early-adopter"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"policy", "explain", "../../docs/policy.example.yaml", "--node-facts", facts, "--at", "2026-12-01T09:00:00Z"}
	out, err := runPolicyValidate(t, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Ring:          pilot: ",
		"Restart now:   root, the admin group and the user of an active local session (user_restart: session)\n",
		"Gates:         wait for ring lab: 95% success over at least 3 reports; with fewer reports: open 3d after the update is first seen\n",
		"Transactions:  may remove linux-image-*; may change without a rollback payload tzdata\n",
		"Restarts:      auto: restart the services still running replaced code (a process not restarted needs a reboot); include none; exclude postgresql*\n",
		"Hooks:         before reboot /usr/local/sbin/lb-drain --wait (timeout 5m); after reboot /usr/local/sbin/ready-check (timeout 2m)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = runPolicyValidate(t, append([]string{"-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("explain -o json: %v\n%s", err, out)
	}
	var ex struct {
		Reboot struct {
			UserRestart string `json:"user_restart"`
		} `json:"reboot"`
		Gates []struct {
			Ring          string `json:"ring"`
			TooFewReports string `json:"too_few_reports"`
			OpenAfter     string `json:"open_after"`
		} `json:"gates"`
		Transactions struct {
			AllowRemove     []string `json:"allow_remove"`
			WithoutRollback []string `json:"without_rollback"`
		} `json:"transactions"`
	}
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("json %q: %v", out, err)
	}
	if ex.Reboot.UserRestart != "session" || len(ex.Gates) != 1 || ex.Gates[0].Ring != "lab" ||
		ex.Gates[0].TooFewReports != "open" || ex.Gates[0].OpenAfter != "3d" ||
		strings.Join(ex.Transactions.AllowRemove, ",") != "linux-image-*" || strings.Join(ex.Transactions.WithoutRollback, ",") != "tzdata" {
		t.Errorf("json = %+v", ex)
	}
}
