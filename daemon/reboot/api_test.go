package reboot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/ipc"
)

// The test binary doubles as a client process: with PATCHRING_TEST_CLIENT
// set it makes one reboot call through the real client and prints the
// outcome.
func TestMain(m *testing.M) {
	if sock := os.Getenv("PATCHRING_TEST_CLIENT"); sock != "" {
		os.Exit(clientMain(sock, os.Getenv("PATCHRING_TEST_OP")))
	}

	code := m.Run()
	testutil.RemoveSelfShared()
	os.Exit(code)
}

func clientMain(sock, op string) int {
	c := &client.Client{Socket: sock}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	verb, arg, _ := strings.Cut(op, " ")
	var (
		st  apitypes.RebootStatus
		err error
	)
	switch verb {
	case "status":
		st, err = c.RebootStatus(ctx)
	case "defer":
		st, err = c.Defer(ctx, arg)
	case "refuse":
		st, err = c.Refuse(ctx)
	case "now":
		err = c.RestartNow(ctx)
	default:
		err = fmt.Errorf("unknown op %q", op)
	}
	var ae *client.APIError
	switch {
	case err == nil:
		fmt.Printf("ok state=%s used=%d left=%d refused_by=%q restart_denied=%q\n", st.State, st.DeferralsUsed, st.DeferralsLeft, st.RefusedBy, st.RestartDenied)
	case errors.As(err, &ae):
		fmt.Printf("error %d %s: %s\n", ae.Status, ae.Code, ae.Msg)
	default:
		fmt.Printf("fail %v\n", err)
	}
	return 0
}

// apiNode is a node whose orchestrator runs, on a fake clock, behind the
// real local API server on a unix socket another uid can reach.
type apiNode struct {
	*node
	clock      *reboottest.Clock
	sessions   *fakeSessions
	srv        *localapi.Server
	sock       string
	stopServer func()
}

func startAPI(t *testing.T, rules reboot.Rules) *apiNode {
	t.Helper()
	clock := reboottest.NewClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	sessions := &fakeSessions{}
	n := newNode(t, "desk", rules, clock.Now().Add(-time.Hour), reboot.Config{Clock: clock, Sessions: sessions})
	n.require(clock.Now())
	n.run()

	sock := filepath.Join(testutil.SocketDir(t), "api.sock")
	srv := localapi.New(testutil.Logger(t), "")
	srv.Mount(localapi.Parts{Reboot: n.o, Status: statusOf(func() apitypes.Status {
		return apitypes.Status{Subsystems: []apitypes.SubsystemStatus{n.o.Status()}}
	})})
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &apiNode{node: n, clock: clock, sessions: sessions, srv: srv, sock: sock, stopServer: stop}
}

// runClient runs this test binary as a client process with uid.
func runClient(t *testing.T, uid int, sock, op string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.SelfShared(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_CLIENT="+sock, "PATCHRING_TEST_OP="+op, "GORACE=atexit_sleep_ms=0")
	testutil.AsUser(cmd, uid, uid)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
	}
	return strings.TrimSpace(string(out))
}

// An unprivileged local user defers within the policy's limits; the server
// refuses anything beyond them with 403 and the reason.
func TestUserRequestsOverTheLocalAPI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to run a client as another uid (make test runs as root)")
	}
	const nobody = 65534
	rules := reboot.Rules{
		NotifyAhead:  30 * time.Minute,
		Deadline:     48 * time.Hour,
		Grace:        4 * time.Hour,
		DeferChoices: reboot.ChoicesFromDurations([]time.Duration{time.Hour, 4 * time.Hour}),
		MaxDeferrals: 2,
	}
	a := startAPI(t, rules)
	allowRefuse := func() {
		r := a.getRules()
		r.AllowRefuse = true
		a.setRules(r)
	}
	steps := []struct {
		name   string
		before func()
		op     string
		want   string
	}{
		{"status", nil, "status", `ok state=restart-required used=0 left=2 refused_by="" restart_denied="uid 65534 may not restart this machine: it has no active local session`},
		{"defer within limits", nil, "defer 1h", "ok state=restart-required used=1 left=1"},
		{"forged choice", nil, "defer 99h", `error 403 access-denied: deferral "99h" is not one the policy offers (it offers: 1h, 4h)`},
		{"defer by an equal duration", nil, "defer 240m", "ok state=restart-required used=2 left=0"},
		{"beyond the maximum", nil, "defer 1h", "error 403 access-denied: no deferrals left: the policy allows 2 and all were used"},
		{"refuse where the policy forbids it", nil, "refuse", "error 403 access-denied: the policy does not let users decline this restart"},
		{"refuse where the policy allows it", allowRefuse, "refuse", `ok state=restart-required used=2 left=0 refused_by="nobody (uid 65534)"`},
		{"defer after refusing", nil, "defer 1h", "error 409 conflict: the restart was declined"},
		{"empty choice", nil, "defer ", "error 400 bad-request: defer: choice is empty"},
		{"restart without a local session", nil, "now", "error 403 access-denied: uid 65534 may not restart this machine: it has no active local session"},
		{"restart where the policy allows only admins", func() {
			a.sessions.set(nobody, true)
			r := a.getRules()
			r.AdminRestartOnly = true
			a.setRules(r)
		}, "now", "error 403 access-denied: the policy lets only root and the admin group restart this machine"},
		{"status at the machine", func() {
			r := a.getRules()
			r.AdminRestartOnly = false
			a.setRules(r)
		}, "status", `ok state=restart-required used=2 left=0 refused_by="nobody (uid 65534)" restart_denied=""`},
		{"restart now at the machine", nil, "now", "ok"},
		{"restart twice", nil, "now", "error 409 conflict: the restart is already under way"},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		got := runClient(t, nobody, a.sock, s.op)
		if !strings.HasPrefix(got, s.want) {
			t.Errorf("%s: uid %d %q:\n got %q\nwant prefix %q", s.name, nobody, s.op, got, s.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg, err := a.rb.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "openssl") {
		t.Errorf("restart message %q", msg)
	}
	if got := runClient(t, nobody, a.sock, "status"); !strings.HasPrefix(got, "ok state=rebooting") {
		t.Errorf("status after the restart request: %q", got)
	}
	a.restartDaemon(a.clock.Now().Add(time.Minute))
	hist, err := a.o.History()
	if err != nil || len(hist) != 1 || hist[0].By != "user nobody (uid 65534)" || hist[0].RefusedBy != "nobody (uid 65534)" || hist[0].DeferralsUsed != 2 {
		t.Errorf("history %+v, %v", hist, err)
	}
}

func TestRestartNowWithoutRunIsUnavailable(t *testing.T) {
	a := startAPI(t, reboot.Rules{Deadline: time.Hour})
	a.stop()
	err := (&client.Client{Socket: a.sock}).RestartNow(context.Background())
	if !client.IsUnavailable(err) {
		t.Errorf("err = %v, want unavailable", err)
	}
}

func TestEventStream(t *testing.T) {
	rules := reboot.Rules{
		NotifyAhead:  30 * time.Minute,
		Deadline:     48 * time.Hour,
		DeferChoices: reboot.ChoicesFromDurations([]time.Duration{time.Hour}),
		MaxDeferrals: 1,
	}
	a := startAPI(t, rules)
	c := &client.Client{Socket: a.sock}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	events, err := c.Events(sctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string) apitypes.Event {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			return ev
		case <-ctx.Done():
			t.Fatalf("no event for %s", what)
		}
		return apitypes.Event{}
	}
	if ev := next("the initial status"); ev.Type != apitypes.EventRebootStatus || ev.Reboot == nil || !ev.Reboot.Required {
		t.Fatalf("first event %+v", ev)
	}
	if _, err := c.Defer(ctx, "1h"); err != nil {
		t.Fatal(err)
	}
	// The reminder of the pending restart may come first, and so may the
	// status as it was before the deferral.
	ev := next("the deferral")
	for ev.Type == apitypes.EventRebootReminder || ev.Type == apitypes.EventRebootStatus && ev.Reboot.DeferralsUsed == 0 {
		ev = next("the deferral")
	}
	if ev.Type != apitypes.EventRebootStatus || ev.Reboot.DeferralsUsed != 1 || ev.Reboot.DeferralsLeft != 0 {
		t.Errorf("event after deferring: %s %+v", ev.Type, ev.Reboot)
	}
	// The restart planned at 10:30 moved to 11:30: the countdown starts
	// at 11:15.
	// The orchestrator may have read the clock just before the jump and
	// asked for a timer counted from the old time, which would then fire
	// an hour late: it looks again, as rebootapi's SetClock has it do.
	a.clock.Set(time.Date(2026, 3, 2, 11, 15, 0, 0, time.UTC))
	a.o.RulesChanged()
	ev = next("the countdown")
	for ev.Type == apitypes.EventRebootStatus || ev.Type == apitypes.EventRebootReminder {
		ev = next("the countdown")
	}
	if ev.Type != apitypes.EventRebootCountdown || !ev.Reboot.NextAutomatic.Equal(time.Date(2026, 3, 2, 11, 30, 0, 0, time.UTC)) {
		t.Errorf("event %s, next automatic %v; want the countdown to 11:30", ev.Type, ev.Reboot.NextAutomatic)
	}
	if err := c.RestartNow(ctx); err != nil {
		t.Fatal(err)
	}
	for ev = next("the restart"); ev.Type != apitypes.EventRebooting; ev = next("the restart") {
	}
	if ev.Reboot.State != apitypes.RebootStateRebooting {
		t.Errorf("rebooting event with state %q", ev.Reboot.State)
	}
	raw, _ := json.Marshal(ev)
	if !strings.Contains(string(raw), `"type":"rebooting"`) {
		t.Errorf("event JSON %s", raw)
	}

	stop() // the client goes away: the channel closes
	for range events {
	}

	// The server stopping ends the stream too.
	events, err = c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next("the initial status")
	a.stopServer()
	for range events {
	}
	if ctx.Err() != nil {
		t.Fatal("the stream did not end when the server stopped")
	}
}

// statusOf serves GET /status from a function.
type statusOf func() apitypes.Status

func (f statusOf) Status(context.Context, apicall.Caller) apitypes.Status { return f() }
