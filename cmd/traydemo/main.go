// Command traydemo runs the tray against an in-memory daemon whose restart
// is pending, for screenshots and manual checks of the tray on a desktop:
// deferrals are counted and refused when none are left, as the daemon does.
// It is not the product: `patchring tray` talks to patchringd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/tray"
)

// memDaemon is a tray.Daemon kept in memory.
type memDaemon struct {
	mu   sync.Mutex
	st   apitypes.RebootStatus
	subs []chan apitypes.Event
}

var _ tray.Daemon = (*memDaemon)(nil)

func (d *memDaemon) RebootStatus(context.Context) (apitypes.RebootStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st, nil
}

func (d *memDaemon) Defer(_ context.Context, choice string) (apitypes.RebootStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.st.Choices, func(c apitypes.DeferChoice) bool { return c.Duration == choice })
	switch {
	case i < 0:
		return d.st, fmt.Errorf("deferral %q is not offered", choice)
	case d.st.DeferralsLeft == 0:
		return d.st, errors.New("no deferrals left")
	}
	d.st.DeferralsLeft--
	d.st.DeferralsUsed++
	d.st.DeferredUntil = time.Now().Add(time.Duration(d.st.Choices[i].Seconds) * time.Second)
	d.emit()
	return d.st, nil
}

func (d *memDaemon) Refuse(context.Context) (apitypes.RebootStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.st.CanRefuse {
		return d.st, errors.New("the policy does not allow declining")
	}
	d.st.Refused = true
	d.emit()
	return d.st, nil
}

func (d *memDaemon) RestartNow(context.Context) error {
	fmt.Fprintln(os.Stderr, "traydemo: the user asked to restart now (not restarting)")
	return nil
}

func (d *memDaemon) Events(ctx context.Context) (<-chan apitypes.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan apitypes.Event, 16)
	d.subs = append(d.subs, ch)
	return ch, nil
}

// emit sends the status to subscribers; the caller holds mu.
func (d *memDaemon) emit() {
	st := d.st
	for _, ch := range d.subs {
		select {
		case ch <- apitypes.Event{Type: apitypes.EventRebootStatus, Reboot: &st, Time: time.Now()}:
		default:
		}
	}
}

func main() {
	left := flag.Int("left", 2, "deferrals left")
	refuse := flag.Bool("refuse", true, "the policy allows declining")
	deadline := flag.String("deadline", "", "effective deadline, RFC 3339 (default: the day after tomorrow at 18:00 local time)")
	flag.Parse()

	now := time.Now()
	dl := time.Date(now.Year(), now.Month(), now.Day()+2, 18, 0, 0, 0, now.Location())
	if *deadline != "" {
		t, err := time.Parse(time.RFC3339, *deadline)
		if err != nil {
			fmt.Fprintln(os.Stderr, "traydemo: -deadline:", err)
			os.Exit(2)
		}
		dl = t
	}
	d := &memDaemon{st: apitypes.RebootStatus{
		Required:          true,
		Since:             now.Add(-2 * time.Hour),
		Reason:            "Security updates to openssl and the Linux kernel need a restart",
		Packages:          []string{"openssl 3.0.17-1~deb12u2", "linux-image-6.1.0-37-amd64 6.1.140-1"},
		Deadline:          dl,
		EffectiveDeadline: dl,
		DeferralsUsed:     3 - *left,
		DeferralsLeft:     *left,
		Choices: []apitypes.DeferChoice{
			{Label: "1 hour", Duration: "1h", Seconds: 3600},
			{Label: "4 hours", Duration: "4h", Seconds: 4 * 3600},
			{Label: "until tomorrow", Duration: "tomorrow", Seconds: 18 * 3600},
		},
		CanRefuse:     *refuse,
		NextAutomatic: dl,
		ActiveHours:   "08:00-18:00",
		State:         apitypes.RebootStateRestartRequired,
	}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := tray.Run(ctx, d, tray.Options{Log: log}); err != nil {
		fmt.Fprintln(os.Stderr, "traydemo:", err)
		os.Exit(1)
	}
}
