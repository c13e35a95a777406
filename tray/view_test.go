package tray

import (
	"bytes"
	"image/png"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Thursday 2026-03-12 10:00 UTC; the deadline is the same day at 18:00.
var (
	testNow      = time.Date(2026, 3, 12, 10, 0, 0, 0, time.UTC)
	testDeadline = time.Date(2026, 3, 12, 18, 0, 0, 0, time.UTC)
)

// menuLines renders a view's items like dbustest.MenuItem.Lines.
func menuLines(v view) []string {
	out := []string{v.status}
	for _, it := range v.items {
		if it.enabled {
			out = append(out, it.label)
		} else {
			out = append(out, it.label+" [disabled]")
		}
	}
	return out
}

func TestBuildView(t *testing.T) {
	t.Parallel()
	pending := PendingRestart(testNow, testDeadline, 2, false)
	tests := []struct {
		name      string
		st        apitypes.RebootStatus
		connected bool
		icon      iconKind
		lines     []string
		tooltip   string
	}{
		{
			name:      "disconnected",
			st:        pending,
			connected: false,
			icon:      iconDisconnected,
			lines:     []string{"Disconnected from patchringd"},
			tooltip:   "disconnected",
		},
		{
			name:      "up to date",
			st:        apitypes.RebootStatus{State: apitypes.RebootStateUpToDate},
			connected: true,
			icon:      iconUpToDate,
			lines:     []string{"Up to date", "Details"},
		},
		{
			name:      "empty state derives from required",
			st:        apitypes.RebootStatus{},
			connected: true,
			icon:      iconUpToDate,
			lines:     []string{"Up to date", "Details"},
		},
		{
			name:      "updates pending",
			st:        apitypes.RebootStatus{State: apitypes.RebootStateUpdatesPending},
			connected: true,
			icon:      iconUpdatesPending,
			lines:     []string{"Updates pending", "Details"},
		},
		{
			name: "restart not allowed to this user",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 2, false)
				st.RestartDenied = "uid 1000 may not restart this machine: it has no active local session"
				return st
			}(),
			connected: true,
			icon:      iconRestartRequired,
			lines: []string{"Restart required by Thu 18:00", "Restart now [disabled]", "Defer 1 hour (2 left)",
				"Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details"},
			tooltip: "Security updates to openssl",
		},
		{
			name:      "restart required with deferrals left",
			st:        pending,
			connected: true,
			icon:      iconRestartRequired,
			lines: []string{"Restart required by Thu 18:00", "Restart now", "Defer 1 hour (2 left)",
				"Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details"},
			tooltip: "Security updates to openssl",
		},
		{
			name:      "deferrals exhausted disables the choices",
			st:        PendingRestart(testNow, testDeadline, 0, false),
			connected: true,
			icon:      iconRestartRequired,
			lines: []string{"Restart required by Thu 18:00", "Restart now", "Defer 1 hour (none left) [disabled]",
				"Defer 4 hours (none left) [disabled]", "Defer until tomorrow (none left) [disabled]", "Details"},
		},
		{
			name:      "refusing allowed",
			st:        PendingRestart(testNow, testDeadline, 1, true),
			connected: true,
			icon:      iconRestartRequired,
			lines: []string{"Restart required by Thu 18:00", "Restart now", "Defer 1 hour (1 left)",
				"Defer 4 hours (1 left)", "Defer until tomorrow (1 left)", "Don't restart", "Details"},
		},
		{
			name: "refused",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 1, true)
				st.Refused = true
				return st
			}(),
			connected: true,
			icon:      iconRestartRequired,
			lines:     []string{"Restart declined (you chose not to restart)", "Restart now", "Details"},
		},
		{
			name: "deferred",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 1, false)
				st.DeferredUntil = testNow.Add(4 * time.Hour)
				return st
			}(),
			connected: true,
			icon:      iconRestartRequired,
			lines: []string{"Restart deferred until 14:00 (required by Thu 18:00)", "Restart now",
				"Defer 1 hour (1 left)", "Defer 4 hours (1 left)", "Defer until tomorrow (1 left)", "Details"},
		},
		{
			name: "deadline near",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 0, false)
				st.State = apitypes.RebootStateDeadlineNear
				st.Choices = nil
				return st
			}(),
			connected: true,
			icon:      iconDeadlineNear,
			lines:     []string{"Restart required by Thu 18:00", "Restart now", "Details"},
		},
		{
			name: "deadline next week shows the date",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline.AddDate(0, 0, 8), 2, false)
				st.Choices = nil
				return st
			}(),
			connected: true,
			icon:      iconRestartRequired,
			lines:     []string{"Restart required by Fri 20 Mar 18:00", "Restart now", "Details"},
		},
		{
			name: "rebooting",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 2, true)
				st.State = apitypes.RebootStateRebooting
				return st
			}(),
			connected: true,
			icon:      iconDeadlineNear,
			lines:     []string{"Restarting now"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := buildView(tc.st, tc.connected, testNow, time.UTC)
			if got := menuLines(v); !slices.Equal(got, tc.lines) {
				t.Errorf("menu:\n got %q\nwant %q", got, tc.lines)
			}
			if v.icon != tc.icon {
				t.Errorf("icon = %v, want %v", v.icon, tc.icon)
			}
			if !strings.Contains(v.tooltip, tc.tooltip) || !strings.HasPrefix(v.tooltip, "patchring: ") {
				t.Errorf("tooltip %q does not start with patchring: and contain %q", v.tooltip, tc.tooltip)
			}
		})
	}
}

func TestBuildViewCapsChoices(t *testing.T) {
	t.Parallel()
	st := PendingRestart(testNow, testDeadline, 2, true)
	for i := range 20 {
		st.Choices = append(st.Choices, apitypes.DeferChoice{Label: "x", Duration: string(rune('a' + i)), Seconds: 60})
	}
	v := buildView(st, true, testNow, time.UTC)
	if len(v.items) > menuSlots {
		t.Fatalf("%d items, the menu has %d slots", len(v.items), menuSlots)
	}
	if last := v.items[len(v.items)-1]; last.label != labelDetails {
		t.Errorf("last item %q, want Details", last.label)
	}
	if got := v.items[len(v.items)-2]; got.label != labelRefuse {
		t.Errorf("Don't restart lost when capping choices: %q", menuLines(v))
	}
}

func TestActionKeys(t *testing.T) {
	t.Parallel()
	for _, a := range []action{{kind: actRestart}, {kind: actRefuse}, {kind: actDetails}, {kind: actDefer, choice: "4h"}, {kind: actDefer, choice: "until:tomorrow"}} {
		got, ok := parseActionKey(a.key())
		if !ok || got != a {
			t.Errorf("parseActionKey(%q) = %+v, %v; want %+v", a.key(), got, ok, a)
		}
	}
	for _, key := range []string{"", "default", "defer:", "restart ", "Restart"} {
		if a, ok := parseActionKey(key); ok {
			t.Errorf("parseActionKey(%q) = %+v, want not ok", key, a)
		}
	}
}

func FuzzParseActionKey(f *testing.F) {
	for _, s := range []string{"restart", "refuse", "details", "defer:4h", "defer:", "default", "defer:défer\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		a, ok := parseActionKey(key)
		if !ok {
			return
		}
		if a.key() != key {
			t.Fatalf("parseActionKey(%q) = %+v whose key is %q", key, a, a.key())
		}
		if a.kind == actDefer && a.choice == "" {
			t.Fatalf("defer action without a choice from %q", key)
		}
	})
}

func TestPromptNotification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		st       apitypes.RebootStatus
		fallback bool
		actions  []Action
		body     string
	}{
		{
			name:    "menu mode offers restart and the first deferral",
			st:      PendingRestart(testNow, testDeadline, 2, true),
			actions: []Action{{keyRestart, "Restart now"}, {"defer:1h", "Defer 1 hour"}},
			body:    "You can defer 2 more times.",
		},
		{
			name:    "menu mode without deferrals left",
			st:      PendingRestart(testNow, testDeadline, 0, false),
			actions: []Action{{keyRestart, "Restart now"}},
			body:    "No deferrals left.",
		},
		{
			name:     "fallback carries every choice",
			st:       PendingRestart(testNow, testDeadline, 1, true),
			fallback: true,
			actions: []Action{{keyRestart, "Restart now"}, {"defer:1h", "Defer 1 hour (1 left)"}, {"defer:4h", "Defer 4 hours (1 left)"},
				{"defer:tomorrow", "Defer until tomorrow (1 left)"}, {keyRefuse, "Don't restart"}, {keyDetails, "Details"}},
			body: "You can defer once more.",
		},
		{
			name: "no restart where the user may not",
			st: func() apitypes.RebootStatus {
				st := PendingRestart(testNow, testDeadline, 2, false)
				st.RestartDenied = "the policy lets only root and the admin group restart this machine"
				return st
			}(),
			actions: []Action{{"defer:1h", "Defer 1 hour"}},
			body:    "You can defer 2 more times.",
		},
		{
			name:     "fallback leaves out what is not allowed",
			st:       PendingRestart(testNow, testDeadline, 0, false),
			fallback: true,
			actions:  []Action{{keyRestart, "Restart now"}, {keyDetails, "Details"}},
			body:     "No deferrals left.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := promptNotification(tc.st, tc.fallback, testNow, time.UTC)
			if n.Summary != "Restart required by Thu 18:00" {
				t.Errorf("summary %q", n.Summary)
			}
			if !slices.Equal(n.Actions, tc.actions) {
				t.Errorf("actions\n got %v\nwant %v", n.Actions, tc.actions)
			}
			if !strings.Contains(n.Body, tc.st.Reason) || !strings.Contains(n.Body, tc.body) {
				t.Errorf("body %q lacks the reason or %q", n.Body, tc.body)
			}
			if tc.fallback && n.Expire >= 0 {
				t.Errorf("fallback prompt expires (%v); it must stay until answered", n.Expire)
			}
		})
	}
}

func TestCountdownNotification(t *testing.T) {
	t.Parallel()
	st := PendingRestart(testNow, testDeadline, 0, false)
	for _, tc := range []struct {
		before time.Duration
		want   string
	}{
		{15 * time.Minute, "Restarting in 15 minutes"},
		{14*time.Minute + 10*time.Second, "Restarting in 15 minutes"},
		{time.Minute, "Restarting in 1 minute"},
		{0, "Restarting now"},
	} {
		n := countdownNotification(st, testDeadline.Add(-tc.before))
		if n.Summary != tc.want || n.Urgency != UrgencyCritical || len(n.Actions) != 1 || n.Actions[0].Key != keyRestart {
			t.Errorf("%v before: %+v, want %q, critical, with Restart now", tc.before, n, tc.want)
		}
	}
	st.RestartDenied = "uid 1000 may not restart this machine"
	if n := countdownNotification(st, testDeadline.Add(-time.Minute)); len(n.Actions) != 0 {
		t.Errorf("countdown offers %v to a user who may not restart", n.Actions)
	}
}

func TestDetailsNotification(t *testing.T) {
	t.Parallel()
	n := detailsNotification(PendingRestart(testNow, testDeadline, 2, false), testNow, time.UTC)
	for _, want := range []string{"Security updates", "Installed:", "• openssl 3.0.17-1~deb12u2", "• linux-image-amd64", "Deadline: Thu 18:00", "Deferrals left: 2 of 3", "08:00-18:00"} {
		if !strings.Contains(n.Body, want) {
			t.Errorf("details body lacks %q:\n%s", want, n.Body)
		}
	}
	refused := PendingRestart(testNow, testDeadline, 2, true)
	refused.Refused, refused.RefusedBy = true, "alice (uid 1000)"
	if n := detailsNotification(refused, testNow, time.UTC); !strings.Contains(n.Body, "Declined by: alice (uid 1000)") {
		t.Errorf("details of a declined restart lack who declined:\n%s", n.Body)
	}
	if n := detailsNotification(apitypes.RebootStatus{State: apitypes.RebootStateUpToDate}, testNow, time.UTC); n.Body != "No restart is needed." {
		t.Errorf("up to date details body %q", n.Body)
	}
}

func TestIcons(t *testing.T) {
	t.Parallel()
	seen := map[string]iconKind{}
	for k := range numIcons {
		img, err := png.Decode(bytes.NewReader(iconPNG(k)))
		if err != nil {
			t.Fatalf("icon %v: %v", k, err)
		}
		if b := img.Bounds(); b.Dx() != iconSize || b.Dy() != iconSize {
			t.Errorf("icon %v is %v", k, b)
		}
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("icon %v: corner not transparent", k)
		}
		if prev, dup := seen[string(iconPNG(k))]; dup {
			t.Errorf("icons %v and %v are the same", prev, k)
		}
		seen[string(iconPNG(k))] = k
	}
}
