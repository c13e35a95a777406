package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/engine"
	pinv "github.com/patchring/patchring/platform/inventory"
)

type fakeInventory struct{ snap *pinv.Snapshot }

func (f fakeInventory) Latest() *pinv.Snapshot { return f.snap }

type fakePolicy int64

func (f fakePolicy) TimestampVersion() int64 { return int64(f) }

type fakeEngine struct {
	txs []*engine.Tx
	err error
}

func (f fakeEngine) History(int) ([]*engine.Tx, error) { return f.txs, f.err }

type fakeReboot bool

func (f fakeReboot) RebootStatus() apitypes.RebootStatus {
	return apitypes.RebootStatus{Required: bool(f)}
}

// TestRegisterReadsTheSources: each metric is read from its part when
// gathered.
func TestRegisterReadsTheSources(t *testing.T) {
	r := prometheus.NewRegistry()
	Register(r, Sources{
		Inventory: fakeInventory{&pinv.Snapshot{ScanMS: 12.5, Packages: &pinv.Packages{Counts: pinv.Counts{Present: 321}}}},
		Policy:    fakePolicy(7),
		Engine: fakeEngine{txs: []*engine.Tx{
			{Outcome: engine.OutcomeInstalled}, {Outcome: engine.OutcomeInstalled}, {Outcome: engine.OutcomeRolledBack},
		}},
		Reboot: fakeReboot(true),
	})
	got := gather(t, r)
	want := map[string]float64{
		"patchring_inventory_packages":                        321,
		"patchring_inventory_scan_milliseconds":               12.5,
		"patchring_policy_timestamp_version":                  7,
		"patchring_reboot_required":                           1,
		`patchring_transactions_total{outcome="aborted"}`:     0,
		`patchring_transactions_total{outcome="failed"}`:      0,
		`patchring_transactions_total{outcome="installed"}`:   2,
		`patchring_transactions_total{outcome="rolled-back"}`: 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
}

// gather returns each gathered series (name and labels) with its value.
func gather(t *testing.T, r *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if ls := m.GetLabel(); len(ls) > 0 {
				var parts []string
				for _, l := range ls {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			default:
				t.Fatalf("%s is neither a gauge nor a counter", key)
			}
		}
	}
	return out
}

// TestRegisterSkipsPartsThatAreOff: a part that is off has no metrics, and
// an empty inventory or an unreadable history counts zero.
func TestRegisterSkipsPartsThatAreOff(t *testing.T) {
	r := prometheus.NewRegistry()
	Register(r, Sources{Inventory: fakeInventory{}, Engine: fakeEngine{err: errors.New("journal unreadable")}})
	got := gather(t, r)
	names := slices.Sorted(maps.Keys(got))
	want := []string{
		"patchring_inventory_packages", "patchring_inventory_scan_milliseconds",
		`patchring_transactions_total{outcome="aborted"}`, `patchring_transactions_total{outcome="failed"}`,
		`patchring_transactions_total{outcome="installed"}`, `patchring_transactions_total{outcome="rolled-back"}`,
	}
	if !slices.Equal(names, want) {
		t.Errorf("metrics %q, want %q", names, want)
	}
	for k, v := range got {
		if v != 0 {
			t.Errorf("%s = %v, want 0", k, v)
		}
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:9273", ":9273", "example.org:9273", "127.0.0.1"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted", addr)
		} else if !strings.Contains(err.Error(), "metrics_listen") {
			t.Errorf("Listen(%q): %v does not name the setting", addr, err)
		}
	}
}

// TestServeUntilCancelled serves the registry on loopback and stops
// cleanly when its context ends.
func TestServeUntilCancelled(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry()
	Register(r, Sources{Reboot: fakeReboot(false)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, r) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"patchring_reboot_required 0", "go_goroutines", "process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
