package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil/rebootapi"
)

// rebootDaemon is the real reboot orchestrator behind the real local API
// (internal/testutil/rebootapi), which the CLI reaches through its socket.
type rebootDaemon struct{ *rebootapi.Server }

func startRebootDaemon(t *testing.T, rules rebootapi.Rules) *rebootDaemon {
	t.Helper()
	return &rebootDaemon{rebootapi.Start(t, rebootapi.Options{Rules: rules})}
}

func (d *rebootDaemon) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{Out: &out, Err: &errOut, In: strings.NewReader(""), Socket: d.Socket}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestRebootCommands(t *testing.T) {
	d := startRebootDaemon(t, rebootapi.Rules{
		NotifyAhead:  30 * time.Minute,
		Grace:        4 * time.Hour,
		Deadline:     48 * time.Hour,
		DeferChoices: []time.Duration{time.Hour, 4 * time.Hour},
		MaxDeferrals: 1,
	})
	if out, err := d.cli(t, "reboot", "status"); err != nil || out != "No restart needed.\n" {
		t.Fatalf("status before: %q, %v", out, err)
	}
	if _, err := d.cli(t, "reboot", "now"); !strings.Contains(errString(err), "no restart is pending") {
		t.Errorf("now without a pending restart: %v", err)
	}
	if err := d.SetRequired(context.Background(), "Kernel update", []string{"linux-image-amd64 6.1.140-1"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of the output
		wantErr string
	}{
		{"status", []string{"reboot", "status"}, []string{"Restart required.", "Why:", "Kernel update", "Installed:", "linux-image-amd64 6.1.140-1", "Deadline:", "(in 2d)", "Automatic restart:", "(in 4h)", "Deferrals:", "0 used, 1 left", "1h (1 hour), 4h (4 hours)", "State:", "restart-required"}, ""},
		{"defer a choice not offered", []string{"reboot", "defer", "2h"}, nil, `deferral "2h" is not one the policy offers (it offers: 1h, 4h)`},
		{"defer", []string{"reboot", "defer", "4h"}, []string{"Restart deferred until", "(in 8h)", "1 used, none left"}, ""},
		{"defer beyond the maximum", []string{"reboot", "defer", "1h"}, nil, "no deferrals left"},
		{"refuse where not allowed", []string{"reboot", "refuse"}, nil, "the policy does not let users decline this restart"},
		{"status as JSON", []string{"reboot", "status", "-o", "json"}, []string{`"required": true`, `"deferrals_left": 0`, `"state": "restart-required"`}, ""},
		{"defer needs an argument", []string{"reboot", "defer"}, nil, "accepts 1 arg(s)"},
		{"now", []string{"reboot", "now"}, []string{"Restarting now."}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := d.cli(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.WaitReboot(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := d.cli(t, "reboot", "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st apitypes.RebootStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != apitypes.RebootStateRebooting {
		t.Errorf("status after now: %v %+v", err, st)
	}
}

func TestRebootRefuseCommand(t *testing.T) {
	d := startRebootDaemon(t, rebootapi.Rules{Deadline: 24 * time.Hour, AllowRefuse: true})
	if err := d.SetRequired(context.Background(), "Kernel update", nil); err != nil {
		t.Fatal(err)
	}
	out, err := d.cli(t, "reboot", "refuse")
	if err != nil || !strings.Contains(out, "You declined the restart") || !strings.Contains(out, "It happens at the deadline") {
		t.Fatalf("refuse: %q, %v", out, err)
	}
	out, err = d.cli(t, "reboot", "status")
	if err != nil || !strings.Contains(out, "Restart required; declined by root (uid 0).") || !strings.Contains(out, "Declined by:") {
		t.Errorf("status after refusing: %q, %v", out, err)
	}
}

func TestRebootCommandWithoutDaemon(t *testing.T) {
	var out bytes.Buffer
	a := &app{Out: &out, Err: &out, In: strings.NewReader(""), Socket: filepath.Join(t.TempDir(), "none.sock")}
	root := newRootCmd(a)
	root.SetArgs([]string{"reboot", "status"})
	if err := root.Execute(); !client.IsNotRunning(err) {
		t.Errorf("err = %v, want not running", err)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0m", 45 * time.Minute: "45m", 3 * time.Hour: "3h", 3*time.Hour + 5*time.Minute: "3h5m",
		48 * time.Hour: "2d", 51*time.Hour + 7*time.Minute: "2d3h",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
