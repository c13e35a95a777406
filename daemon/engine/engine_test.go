package engine_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// TestRingsAndDeferral: the policy approves acme-tool 1.1; the pilot node
// (deferral 0) installs it at once; the broad node (deferral 2d) waits
// until its clock passes the deferral.
func TestRingsAndDeferral(t *testing.T) {
	w := newWorld(t, apttest.Package{})
	pol := mustPolicy(t, "")
	pilot := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	broad := w.newNode(t, "broad-1", nil, pol)
	w.publish11(t)

	pilot.cycle()
	broad.cycle()
	if v := pilot.version(); v != "1.1" {
		t.Fatalf("pilot has acme-tool %q, want 1.1; history %+v", v, pilot.history())
	}
	if v := broad.version(); v != "1.0" {
		t.Fatalf("broad installed %q before its deferral ended", v)
	}
	d := broad.decision("acme-tool")
	if d.Action != policy.ActionWaitDeferral || d.Ring != "broad" || !strings.Contains(d.Reason, "deferral") {
		t.Errorf("broad decision = %+v, want wait-deferral in ring broad", d)
	}
	h := pilot.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled || h[0].Items[0].From != "1.0" || h[0].Items[0].To != "1.1" {
		t.Fatalf("pilot history: %+v", h)
	}
	var names []string
	for _, s := range h[0].Steps {
		names = append(names, s.Name+":"+s.Status)
	}
	want := "planned:done fetch:done place:done install:done verify:done health-check:done completed:done"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("journal steps:\n got %s\nwant %s", got, want)
	}

	broad.clock.Add(47 * time.Hour)
	broad.cycle()
	if v := broad.version(); v != "1.0" {
		t.Fatalf("broad installed %q one hour before the deferral ended", v)
	}
	broad.clock.Add(2 * time.Hour)
	broad.cycle()
	if v := broad.version(); v != "1.1" {
		t.Fatalf("broad has %q after its deferral, want 1.1 (decision %+v)", v, broad.decision("acme-tool"))
	}
	pilot.audit()
	broad.audit()
}

// TestHealthCheckFailureRollsBack: a failing health check after the
// install puts 1.0 back, and 1.1 is not tried again under the same policy.
func TestHealthCheckFailureRollsBack(t *testing.T) {
	w := newWorld(t, apttest.Package{})
	pol := mustPolicy(t, `health_check:
  command: ["sh", "-c", "test ! -e \"$PATCHRING_ROOT/broken\""]
  timeout: 10s
`)
	n := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.publish11(t)
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("acme-tool is at %q after a failed health check, want 1.0", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeRolledBack || !strings.Contains(h[0].Error, "health check") {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
	// Not reinstalled while the policy stays the same...
	n.cycle()
	if len(n.history()) != 1 || n.version() != "1.0" {
		t.Fatalf("rolled-back update was installed again: %+v", n.history())
	}
	// ...but a new policy version may try again (the check now passes).
	os.Remove(n.sb.Path("broken"))
	n.setPolicy(pol, "v2")
	n.cycle()
	if v := n.version(); v != "1.1" {
		t.Fatalf("after a new policy, acme-tool is %q, want 1.1", v)
	}
}

// TestPolicyRollbackOrder: a rollback order in the signed policy takes the
// node back to 1.0, and 1.1 is denied from then on.
func TestPolicyRollbackOrder(t *testing.T) {
	_, n, _ := newPilot(t, "")
	n.cycle()
	if n.version() != "1.1" {
		t.Fatal("1.1 was not installed")
	}
	n.setPolicy(mustPolicy(t, `rollbacks:
  - package: acme-tool
    version: "1.1"
    reason: breaks printing
`), "v2")
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("after the rollback order acme-tool is %q, want 1.0", v)
	}
	h := n.history()
	if h[0].Kind != engine.KindRollback || h[0].Outcome != engine.OutcomeInstalled || h[1].RolledBy != h[0].ID {
		t.Fatalf("history: %+v", h)
	}
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("1.1 came back after its rollback: %q", v)
	}
	if d := n.decision("acme-tool"); d.Action == policy.ActionInstallNow {
		t.Errorf("decision after rollback: %+v", d)
	}
	n.audit()
}

// TestManualRollback: an admin rolls back a transaction by its number.
func TestManualRollback(t *testing.T) {
	_, n, _ := newPilot(t, "")
	n.cycle()
	first := n.history()[0]
	tx, err := n.eng.Rollback(context.Background(), first.ID, "admin: test")
	if err != nil {
		t.Fatal(err)
	}
	if n.version() != "1.0" || tx.Kind != engine.KindRollback {
		t.Fatalf("after manual rollback: version %q, tx %+v", n.version(), tx)
	}
	if h := n.history(); len(h) != 2 || h[0].ID != tx.ID {
		t.Fatalf("history after the rollback: %+v", h)
	}
	if _, err := n.eng.Rollback(context.Background(), first.ID, "again"); err == nil || !strings.Contains(err.Error(), "already rolled back") {
		t.Errorf("second rollback of the same transaction: %v", err)
	}
	n.cycle()
	if n.version() != "1.0" {
		t.Error("manually rolled back update was reinstalled under the same policy")
	}
	n.audit()
}

// TestCorruptPayloadIsNotInstalled: the repository serves bytes that do not
// match the hash apt verified: the transaction fails before installing.
func TestCorruptPayloadIsNotInstalled(t *testing.T) {
	w, n, _ := newPilot(t, "")
	e, ok := w.repo.Entry("acme-tool", "1.1", "amd64")
	if !ok {
		t.Fatal("1.1 not in the repo")
	}
	pool := w.repo.Dir() + "/" + e.Filename
	data, err := os.ReadFile(pool)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(pool, data, 0o644); err != nil {
		t.Fatal(err)
	}
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("a corrupt payload got installed: %q", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "fetch") {
		t.Fatalf("history: %+v", h)
	}
	if reachedInstall(h[0]) {
		t.Error("the journal shows an install step for a payload that failed verification")
	}
	n.audit()
}

// TestPostinstFailureRecovers: 1.1's postinst fails; the transaction rolls
// back to 1.0 and dpkg's state is clean.
func TestPostinstFailureRecovers(t *testing.T) {
	w := newWorld(t, apttest.Package{Name: "acme-tool", Version: "1.1",
		Postinst: "#!/bin/sh\necho 'acme-tool: cannot migrate its database' >&2\nexit 1\n"})
	n := w.newNode(t, "pilot-1", []string{"pilot"}, mustPolicy(t, ""))
	w.publish11(t)
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("acme-tool is %q after a failed postinst, want 1.0", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeRolledBack || !strings.Contains(h[0].Error, "install") {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
}

// TestLockHeldIsReported: another process holds dpkg's lock; the engine
// waits, then fails the transaction naming the holder, changing nothing.
func TestLockHeldIsReported(t *testing.T) {
	_, n, _ := newPilot(t, "")
	holder := apttest.MustHoldLock(t, n.sb)
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("installed %q while dpkg was locked", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "busy") ||
		!strings.Contains(h[0].Error, itoa(holder.PID())) {
		t.Fatalf("history does not name the lock holder %d: %+v", holder.PID(), h)
	}
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	// The update is planned again and installs once the lock is free.
	n.cycle()
	if n.version() != "1.1" {
		t.Fatal("not installed after the lock was released")
	}
}

func reachedInstall(tx *engine.Tx) bool {
	for _, s := range tx.Steps {
		if s.Name == engine.StepInstall {
			return true
		}
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestPlanSurvivesRepositoryOutage: when apt-get update fails (the WAN is
// down) the engine still plans on the indices apt verified last, so a
// site can install from its LAN peers, and it reports the failure.
func TestPlanSurvivesRepositoryOutage(t *testing.T) {
	w := newWorld(t, apttest.Package{})
	n := w.newNode(t, "broad-1", nil, mustPolicy(t, ""))
	w.publish11(t)
	if _, err := n.eng.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.repo.Stop(); err != nil {
		t.Fatal(err)
	}
	ds, err := n.eng.Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "last verified indices") {
		t.Fatalf("plan with the repository down: err = %v", err)
	}
	if len(ds) != 1 || ds[0].Update.Package != "acme-tool" || ds[0].Update.Version != "1.1" {
		t.Fatalf("plan with the repository down lost the update: %+v", ds)
	}
	if st := n.eng.Status(); st.State != "degraded" {
		t.Errorf("status after a failed refresh: %+v", st)
	}
}
