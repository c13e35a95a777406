package tufrepo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/policy/trust"
)

// onlineKeys copies only the snapshot and timestamp key files of keys into
// a new directory: what a keeper host holds.
func onlineKeys(t *testing.T, keys string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "online-keys")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(keys)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), RoleSnapshot+"-") && !strings.HasPrefix(e.Name(), RoleTimestamp+"-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(keys, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("copied %d online key files, want 2", n)
	}
	return dst
}

// TestKeeperKeepsAgentsVerifying runs the keeper with a one-minute
// timestamp and a five-minute snapshot lifetime, with only the online keys,
// under a fake clock: an agent's trust client keeps verifying for ten
// minutes with no admin action; with the keeper stopped verification fails
// once the timestamp expires, and resumes when the keeper returns.
func TestKeeperKeepsAgentsVerifying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := t.TempDir()
		dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
		r, err := Init(dir, keys, Options{Expiries: map[string]time.Duration{RoleTimestamp: time.Minute, RoleSnapshot: 5 * time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.PublishPolicy([]byte(`{"rings":[]}`)); err != nil {
			t.Fatal(err)
		}
		start := r.Versions()
		root, err := os.ReadFile(filepath.Join(dir, metadataDir, "1.root.json"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := trust.New(trust.Config{TrustedRoot: root, StateDir: filepath.Join(base, "agent"),
			Sources: []trust.Source{&trust.DirSource{Dir: dir}}})
		if err != nil {
			t.Fatal(err)
		}
		startKeeper := func() (stop func()) {
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			k := &Keeper{Dir: dir, KeysDir: onlineKeys(t, keys)}
			go func() { done <- k.Run(ctx) }()
			return func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("keeper: %v", err)
				}
			}
		}

		stop := startKeeper()
		for i := range 60 { // ten minutes, every ten seconds
			time.Sleep(10 * time.Second)
			synctest.Wait()
			if _, err := c.Refresh(t.Context()); err != nil {
				t.Fatalf("after %ds with the keeper running: refresh: %v", (i+1)*10, err)
			}
		}
		stop()
		ro, err := Open(dir, "", "")
		if err != nil {
			t.Fatal(err)
		}
		v := ro.Versions()
		if v.Root != start.Root || v.Targets != start.Targets {
			t.Errorf("keeper changed offline roles: %+v, started at %+v", v, start)
		}
		// Half a minute per timestamp over ten minutes, the snapshot every
		// two and a half.
		if v.Timestamp-start.Timestamp < 18 || v.Snapshot-start.Snapshot < 3 {
			t.Errorf("after ten minutes: versions %+v, started at %+v", v, start)
		}

		// Keeper stopped: within a timestamp lifetime the agent stops
		// trusting the repository.
		time.Sleep(time.Minute + time.Second)
		_, err = c.Refresh(t.Context())
		if !errors.Is(err, trust.ErrExpired) {
			t.Fatalf("refresh a minute after the keeper stopped: err = %v, want ErrExpired", err)
		}
		if err := c.CheckExpiry(); !errors.Is(err, trust.ErrExpired) {
			t.Errorf("CheckExpiry with the keeper stopped: %v, want ErrExpired", err)
		}

		// The keeper returns: verification resumes at once.
		stop = startKeeper()
		defer stop()
		synctest.Wait()
		if _, err := c.Refresh(t.Context()); err != nil {
			t.Fatalf("refresh after the keeper returned: %v", err)
		}
		if err := c.CheckExpiry(); err != nil {
			t.Errorf("CheckExpiry after the keeper returned: %v", err)
		}
	})
}

func TestKeepFreshOnlyWhenDue(t *testing.T) {
	now := time.Now()
	r, _, keys := newRepo(t, Options{Now: func() time.Time { return now },
		Expiries: map[string]time.Duration{RoleTimestamp: time.Hour, RoleSnapshot: 10 * time.Hour}})
	start := r.Versions()
	if _, wrote, err := r.KeepFresh(); err != nil || wrote {
		t.Fatalf("fresh repository: wrote %v, err %v", wrote, err)
	}
	now = now.Add(31 * time.Minute)
	v, wrote, err := r.KeepFresh()
	if err != nil || !wrote || v.Timestamp != start.Timestamp+1 || v.Snapshot != start.Snapshot {
		t.Fatalf("timestamp past half life: versions %+v, wrote %v, err %v", v, wrote, err)
	}
	if got := r.NextDue(); !got.Equal(now.UTC().Add(30 * time.Minute).Truncate(time.Second)) {
		t.Errorf("NextDue = %s, want half an hour on from %s", got, now)
	}
	now = now.Add(5 * time.Hour)
	if v, _, err = r.KeepFresh(); err != nil || v.Snapshot != start.Snapshot+1 || v.Timestamp != start.Timestamp+2 {
		t.Fatalf("snapshot past half life: versions %+v, err %v", v, err)
	}

	// Without the snapshot key a due snapshot cannot be signed: a clear
	// error and nothing written.
	dir := r.Dir()
	online := onlineKeys(t, keys)
	matches, _ := filepath.Glob(filepath.Join(online, RoleSnapshot+"-*"))
	os.Remove(matches[0])
	r2, err := Open(dir, online, "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Hour)
	r2.SetClock(func() time.Time { return now })
	before := r2.Versions()
	if _, _, err := r2.KeepFresh(); !errors.Is(err, ErrNotEnoughKeys) {
		t.Errorf("KeepFresh without the snapshot key: %v, want ErrNotEnoughKeys", err)
	}
	r3, err := Open(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r3.Versions() != before {
		t.Errorf("failed KeepFresh wrote: %+v, was %+v", r3.Versions(), before)
	}
}

func TestSetExpiries(t *testing.T) {
	r, dir, _ := newRepo(t, Options{})
	if err := r.SetExpiries(map[string]time.Duration{RoleTimestamp: 90 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetExpiries(map[string]time.Duration{"bogus": time.Hour}); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("unknown role: %v", err)
	}
	if err := r.SetExpiries(map[string]time.Duration{RoleSnapshot: time.Millisecond}); err == nil {
		t.Error("a sub-second lifetime was accepted")
	}
	r2, err := Open(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range r2.Status(0).Roles {
		want := DefaultExpiries[rs.Role]
		if rs.Role == RoleTimestamp {
			want = 90 * time.Minute
		}
		if rs.Lifetime != want {
			t.Errorf("%s lifetime after reopening = %s, want %s", rs.Role, rs.Lifetime, want)
		}
	}
}

func TestStatusWarnings(t *testing.T) {
	now := time.Now()
	r, _, _ := newRepo(t, Options{Now: func() time.Time { return now },
		Expiries: map[string]time.Duration{RoleTimestamp: time.Hour, RoleSnapshot: 10 * time.Hour, RoleTargets: 40 * 24 * time.Hour}})
	roles := func(ws []Warning) string {
		var s []string
		for _, w := range ws {
			s = append(s, w.Role)
			if w.Expired {
				s = append(s, "expired")
			}
		}
		return strings.Join(s, ",")
	}
	const offline = 14 * 24 * time.Hour
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{
		{0, ""},
		{29 * time.Minute, ""},
		{31 * time.Minute, "timestamp"},
		{2 * time.Hour, "timestamp,expired"},
		{6 * time.Hour, "snapshot,timestamp,expired"},
		{27 * 24 * time.Hour, "targets,snapshot,expired,timestamp,expired"},
	} {
		r.SetClock(func() time.Time { return now.Add(tc.after) })
		if got := roles(r.Status(0).Warnings(offline)); got != tc.want {
			t.Errorf("after %s: warnings %q, want %q", tc.after, got, tc.want)
		}
	}
}
