package reboot_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
)

// node is one daemon's reboot orchestrator over its own bbolt file, with
// rules a test may change, a recording rebooter and a boot time the test
// sets when it "restarts the machine".
type node struct {
	t    testing.TB
	name string
	path string
	rb   *reboottest.Rebooter
	cfg  reboot.Config // template; Store, Rules, BootTime are filled in

	mu    sync.Mutex
	rules reboot.Rules
	boot  time.Time

	db   *store.DB
	o    *reboot.Orchestrator
	stop func() // ends Run and waits for it
}

// newNode opens a node whose machine booted at boot.
func newNode(t testing.TB, name string, rules reboot.Rules, boot time.Time, cfg reboot.Config) *node {
	t.Helper()
	n := &node{t: t, name: name, path: filepath.Join(t.TempDir(), store.FileName), rb: reboottest.NewRebooter(), cfg: cfg, rules: rules, boot: boot}
	if n.cfg.Log == nil {
		n.cfg.Log = testutil.Logger(t)
	}
	n.open()
	t.Cleanup(n.close)
	return n
}

func (n *node) open() {
	n.t.Helper()
	db, err := store.Open(n.path, store.Options{})
	if err != nil {
		n.t.Fatalf("%s: open store: %v", n.name, err)
	}
	cfg := n.cfg
	cfg.Store = db
	cfg.Rebooter = n.rb
	cfg.Rules = n.getRules
	cfg.BootTime = func() (time.Time, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.boot, nil
	}
	o, err := reboot.New(cfg)
	if err != nil {
		db.Close()
		n.t.Fatalf("%s: reboot.New: %v", n.name, err)
	}
	n.db, n.o = db, o
}

func (n *node) getRules() reboot.Rules {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rules
}

func (n *node) setRules(r reboot.Rules) {
	n.mu.Lock()
	n.rules = r
	n.mu.Unlock()
	n.o.RulesChanged()
}

// run starts Run.
func (n *node) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := n.o
	go func() { done <- o.Run(ctx) }()
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			n.t.Errorf("%s: Run: %v", n.name, err)
		}
		n.stop = nil
	}
}

func (n *node) close() {
	if n.stop != nil {
		n.stop()
	}
	if n.db != nil {
		n.db.Close()
		n.db = nil
	}
}

// restartDaemon stops the daemon and starts it again on the same state;
// bootedAt is the machine's boot time it then sees (a restart of the
// machine when it is later than before).
func (n *node) restartDaemon(bootedAt time.Time) {
	n.t.Helper()
	n.close()
	n.mu.Lock()
	n.boot = bootedAt
	n.mu.Unlock()
	n.open()
}

func (n *node) require(since time.Time) {
	n.t.Helper()
	if err := n.o.SetRequired(context.Background(), since, "Security updates to openssl and the kernel need a restart", []string{"openssl 3.0.17-1~deb12u2", "linux-image-amd64 6.1.140-1"}); err != nil {
		n.t.Fatalf("%s: SetRequired: %v", n.name, err)
	}
}

// drain returns the events waiting on ch.
func drain(ch <-chan apitypes.Event) []apitypes.Event {
	var out []apitypes.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// timeline renders the events other than plain status changes as "type@offset".
func timeline(evs []apitypes.Event, start time.Time) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == apitypes.EventRebootStatus {
			continue
		}
		out = append(out, ev.Type+"@"+ev.Time.Sub(start).String())
	}
	return out
}

var ctx = context.Background()
