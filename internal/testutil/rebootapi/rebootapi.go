// Package rebootapi serves patchringd's real reboot orchestrator behind the
// real local API on a unix socket, on a fake clock and with a rebooter that
// records instead of restarting. It is for end-to-end tests of the tray and
// the CLI, which reach the agent only through daemon/client: what they set
// up and observe here is in plain types (durations, apitypes), so they
// import none of the daemon's parts. It is imported by tests only.
package rebootapi

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/ipc"
)

// Rules are the signed policy's reboot rules the orchestrator applies
// (see the policy's reboot section).
type Rules struct {
	NotifyAhead  time.Duration   // reminder before an automatic restart
	Deadline     time.Duration   // restart by then, counted from when it became required
	Grace        time.Duration   // no automatic restart sooner
	DeferChoices []time.Duration // the deferrals a user may pick
	MaxDeferrals int
	AllowRefuse  bool // users may decline the restart
}

// Options says how to start the server.
type Options struct {
	Rules Rules
	// Start is where the fake clock starts; the zero value is now.
	Start time.Time
}

// Server is a running orchestrator behind the local API.
type Server struct {
	// Socket is the local API's unix socket, for daemon/client.
	Socket string

	o     *reboot.Orchestrator
	clock *reboottest.Clock
	rb    *reboottest.Rebooter
}

// Start serves a reboot orchestrator with no restart pending until the
// test ends. The machine booted an hour before the clock's start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	start := opts.Start
	if start.IsZero() {
		start = time.Now()
	}
	dir := testutil.SocketDir(t)
	db, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	s := &Server{Socket: filepath.Join(dir, "api.sock"), clock: reboottest.NewClock(start), rb: reboottest.NewRebooter()}
	log := testutil.Logger(t).With("side", "daemon")
	rules := reboot.Rules{
		NotifyAhead:  opts.Rules.NotifyAhead,
		Deadline:     opts.Rules.Deadline,
		Grace:        opts.Rules.Grace,
		DeferChoices: reboot.ChoicesFromDurations(opts.Rules.DeferChoices),
		MaxDeferrals: opts.Rules.MaxDeferrals,
		AllowRefuse:  opts.Rules.AllowRefuse,
	}
	booted := start.Add(-time.Hour)
	s.o, err = reboot.New(reboot.Config{
		Store: db, Log: log, Clock: s.clock, Rebooter: s.rb,
		Rules:    func() reboot.Rules { return rules },
		BootTime: func() (time.Time, error) { return booted, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := localapi.New(log, "")
	srv.Mount(localapi.Parts{Reboot: s.o})
	ln, err := ipc.Listen(s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serveDone, runDone := make(chan error, 1), make(chan error, 1)
	go func() { serveDone <- srv.Serve(ctx, ln) }()
	go func() { runDone <- s.o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan error{serveDone, runDone} {
			if err := <-ch; err != nil {
				t.Errorf("reboot API: %v", err)
			}
		}
	})
	return s
}

// SetRequired makes a restart pending from the clock's now, as the engine
// does after installing packages ("name version") that need one.
func (s *Server) SetRequired(ctx context.Context, reason string, packages []string) error {
	if err := s.o.SetRequired(ctx, time.Time{}, reason, packages); err != nil {
		return fmt.Errorf("set restart required: %w", err)
	}
	return nil
}

// Status is the orchestrator's own view, read without the API.
func (s *Server) Status() apitypes.RebootStatus { return s.o.RebootStatus() }

// Now is the fake clock's time.
func (s *Server) Now() time.Time { return s.clock.Now() }

// SetClock moves the fake clock to t, firing the timers due by then, and
// has the orchestrator look at the time again: had it read the clock just
// before the move and asked for its timer just after, the timer would
// count from t and never fire (a real clock has no such jumps).
func (s *Server) SetClock(t time.Time) {
	s.clock.Set(t)
	s.o.RulesChanged()
}

// WaitReboot waits until the orchestrator restarts the machine (records
// a restart) or ctx ends, and returns the restart's message.
func (s *Server) WaitReboot(ctx context.Context) (string, error) { return s.rb.Wait(ctx) }

// Reboots are the messages of the restarts recorded so far.
func (s *Server) Reboots() []string { return s.rb.Calls() }
