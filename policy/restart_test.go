package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const restartBase = "schema: 1\nexpires: 2030-01-01T00:00:00Z\nrings: [{name: all, default: true, defer: 0d}]\n"

func TestRestartServicesParse(t *testing.T) {
	t.Parallel()
	short := mustParse(t, restartBase+"restart_services: auto\n")
	if got := short.RestartMode(); got != RestartAuto {
		t.Errorf("short form: mode %q, want auto", got)
	}
	long := mustParse(t, restartBase+"restart_services:\n  mode: never\n  include: [nginx]\n  exclude: [\"postgres*\"]\n")
	if long.RestartMode() != RestartNever || len(long.RestartServices.Include) != 1 || len(long.RestartServices.Exclude) != 1 {
		t.Errorf("long form: %+v", long.RestartServices)
	}
	if got := mustParse(t, restartBase).RestartMode(); got != RestartNotify {
		t.Errorf("default mode %q, want notify", got)
	}
	// Canonical JSON keeps it (the signed form agents read).
	data, err := MarshalCanonical(long)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data, "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if back.RestartMode() != RestartNever || back.RestartServices.Exclude[0] != "postgres*" {
		t.Errorf("after JSON: %+v", back.RestartServices)
	}
}

func TestRestartServicesMayRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, service string
		want               bool
		why                string
	}{
		{"auto", "restart_services: auto\n", "food", true, ""},
		{"auto unit", "restart_services: auto\n", "nginx.service", true, ""},
		{"notify", "restart_services: notify\n", "food", false, "notify"},
		{"default is notify", "", "food", false, "notify"},
		{"never", "restart_services: never\n", "food", false, "never"},
		{"excluded", "restart_services: {mode: auto, exclude: [\"post*\"]}\n", "postgresql.service", false, "exclude"},
		{"exclude wins", "restart_services: {mode: auto, include: [food], exclude: [food]}\n", "food", false, "exclude"},
		{"not included", "restart_services: {mode: auto, include: [nginx]}\n", "food", false, "include"},
		{"included", "restart_services: {mode: auto, include: [\"fo*\"]}\n", "food.service", true, ""},
		{"display manager", "restart_services: auto\n", "gdm.service", false, "session-critical"},
		{"user session", "restart_services: auto\n", "user@1000.service", false, "session-critical"},
		{"agent itself", "restart_services: auto\n", "patchringd.service", false, "session-critical"},
		{"critical matched by a glob only", "restart_services: {mode: auto, include: [\"*\"]}\n", "lightdm.service", false, "session-critical"},
		{"critical named", "restart_services: {mode: auto, include: [lightdm]}\n", "lightdm.service", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, restartBase+tc.src)
			got, why := p.MayRestart(tc.service)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("MayRestart(%s) = %v %q, want %v with %q", tc.service, got, why, tc.want, tc.why)
			}
		})
	}
}

func TestRestartAndHookProblems(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"bad mode", "restart_services: always\n", "restart_services.mode: 'always' is not a restart mode; use auto, notify or never"},
		{"bad glob", "restart_services: {mode: auto, exclude: [\"[\"]}\n", "restart_services.exclude[0]"},
		{"hook as shell string", "reboot_hooks:\n  pre_reboot: {command: \"drain && stop\"}\n", "must be a list of program and arguments"},
		{"hook relative", "reboot_hooks:\n  pre_reboot: {command: [drain]}\n", "reboot_hooks.pre_reboot.command: 'drain' must be an absolute path"},
		{"hook timeout", "reboot_hooks:\n  post_reboot: {command: [/bin/true], timeout: 2h}\n", "reboot_hooks.post_reboot.timeout: 2h is too long"},
		{"hook output", "reboot_hooks:\n  post_reboot: {command: [/bin/true], max_output: 99999999}\n", "reboot_hooks.post_reboot.max_output"},
		{"margin on block", "windows: [{name: freeze, action: block, cron: \"0 0 * * *\", duration: 2h, tz: UTC, margin: 30m}]\n", "windows[0].margin: applies to allow windows only"},
		{"margin too long", "windows: [{name: n, cron: \"0 2 * * *\", duration: 1h, tz: UTC, margin: 1h}]\n", "windows[0].margin: 1h leaves no time"},
		{"margin negative", "windows: [{name: n, cron: \"0 2 * * *\", duration: 1h, tz: UTC, margin: -5m}]\n", "windows[0].margin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(restartBase+tc.src), "policy.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			if !strings.Contains(ve.Error(), tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", ve.Error(), tc.want)
			}
		})
	}
}

func TestRebootHooksParse(t *testing.T) {
	t.Parallel()
	p := mustParse(t, restartBase+"reboot_hooks:\n  pre_reboot: {command: [/usr/local/bin/drain, --wait], timeout: 2m, max_output: 4096}\n  post_reboot: {command: [/usr/local/bin/ready]}\n")
	pre, post := p.RebootHooks.PreReboot, p.RebootHooks.PostReboot
	if pre == nil || pre.Timeout.Std() != 2*time.Minute || pre.OutputLimit() != 4096 || pre.Command[1] != "--wait" {
		t.Errorf("pre_reboot: %+v", pre)
	}
	if post == nil || post.Timeout.Std() != DefaultHookTimeout || post.OutputLimit() != DefaultHookOutput {
		t.Errorf("post_reboot: %+v", post)
	}
}

func TestWindowMargin(t *testing.T) {
	t.Parallel()
	p := mustParse(t, restartBase+"windows: [{name: nightly, cron: \"0 2 * * *\", duration: 2h, tz: UTC, margin: 30m}]\n")
	for at, want := range map[string]bool{
		"2026-12-01T01:59:00Z": false,
		"2026-12-01T02:00:00Z": true,
		"2026-12-01T03:30:00Z": true, // exactly the margin left
		"2026-12-01T03:31:00Z": false,
		"2026-12-01T03:59:00Z": false,
	} {
		if _, ok := p.InWindow("all", mustTime(t, at)); ok != want {
			t.Errorf("InWindow at %s = %v, want %v", at, ok, want)
		}
	}
	u := Update{Source: SourceApt, Package: "libfoo", Version: "1.1", Classification: ClassSecurity, FirstSeen: mustTime(t, "2026-11-01T00:00:00Z")}
	p.Approve = []Approval{{Package: "libfoo"}}
	d := Evaluate(p, NodeFacts{NodeID: "n1"}, []Update{u}, FleetStats{}, mustTime(t, "2026-12-01T03:45:00Z"))
	if d[0].Action != ActionInstallAt || !d[0].At.Equal(mustTime(t, "2026-12-02T02:00:00Z")) {
		t.Errorf("inside the margin: %s at %s (%s), want install-at the next window", d[0].Action, d[0].At, d[0].Reason)
	}
}
