package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/tufrepo"
)

const freezePolicy = `schema: 1
name: %NAME%
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
auto_approve:
  - name: vendor updates
    sources: [apt]
`

// freezeOrigin serves a TUF repository and can replay an old timestamp or
// go silent, as an origin that stopped refreshing (or an attacker freezing
// the agent) would.
type freezeOrigin struct {
	repoDir string
	mu      sync.Mutex
	mode    string // "", "replay" or "silent"
	old     []byte // the timestamp replayed
}

func (o *freezeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	mode, old := o.mode, o.old
	o.mu.Unlock()
	switch {
	case mode == "silent":
		http.Error(w, "origin down", http.StatusServiceUnavailable)
	case mode == "replay" && strings.HasSuffix(r.URL.Path, "/timestamp.json"):
		w.Write(old)
	default:
		tufrepo.Handler(o.repoDir).ServeHTTP(w, r)
	}
}

func (o *freezeOrigin) set(mode string) { o.mu.Lock(); o.mode = mode; o.mu.Unlock() }

// TestExpiredPolicyFreezesInstalls: a real patchringd with apt in a
// sandbox follows a signed policy whose timestamp expires in seconds. The
// origin stops refreshing: first it replays an older timestamp (refused as
// a rollback), then it goes silent. Once the metadata expires, the agent
// plans the new acme-tool 1.1 as expired and does not install it, `install
// --now` is refused with the reason, and the status says the policy
// expired. A fresh policy resumes installs: 1.1 is installed automatically.
func TestExpiredPolicyFreezesInstalls(t *testing.T) {
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	dir := t.TempDir()
	ctx := context.Background()

	// The vendor's repository and the node's sandbox with acme-tool 1.0.
	aptRepo := apttest.MustStartRepo(t, apttest.RepoConfig{})
	acme := func(v string) string {
		return apttest.MustBuildDeb(t, dir, apttest.Package{Name: "acme-tool", Version: v,
			Files: []apttest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte(v + "\n")}}})
	}
	deb10, deb11 := acme("1.0"), acme("1.1")
	aptRepo.MustAdd(t, deb10)
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: t.TempDir()})
	sb.MustAddRepo(t, "acme", aptRepo)
	if err := sb.DpkgInstall(ctx, deb10); err != nil {
		t.Fatal(err)
	}

	// The fleet's signed repository; its clock is moved back so that a
	// timestamp signed now expires in `life`.
	var clockMu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return time.Now().Add(offset) }
	setOffset := func(d time.Duration) { clockMu.Lock(); offset = d; clockMu.Unlock() }
	repo := newSignedRepo(t, dir, freezePolicy, tufrepo.Options{Now: now})
	publish := func(name string) { t.Helper(); repo.publish(t, name) }
	publish("old")
	oldTimestamp, err := os.ReadFile(filepath.Join(repo.dir, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	const life = 20 * time.Second
	setOffset(life - tufrepo.DefaultExpiries[tufrepo.RoleTimestamp])
	publish("short-lived")
	expires := time.Now().Add(life)
	origin := &freezeOrigin{repoDir: repo.dir, old: oldTimestamp}
	srv := repo.serve(t, origin)

	state := filepath.Join(dir, "agent")
	cfgFile := filepath.Join(dir, "patchringd.yaml")
	cfg := fmt.Sprintf(`apt:
  enabled: true
  root: %s
  apt_config: %s
  check_interval: 1s
  refresh_interval: 1s
policy:
  origin: %s
  root_file: %s
  refresh_interval: 1s
reboot:
  command: ["/bin/true"]
`, sb.Root, sb.AptConfig, srv.URL, repo.rootFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDaemon(t, state, "--config", cfgFile)
	p.waitReady(t)
	c := &client.Client{Socket: p.sock}
	waitFor := func(timeout time.Duration, what string, cond func() (bool, string)) {
		t.Helper()
		waitAgent(t, p, timeout, what, func() error {
			if ok, report := cond(); !ok {
				return errors.New(report)
			}
			return nil
		})
	}
	waitPolicy := func(timeout time.Duration, what string, cond func(apitypes.EffectivePolicy) bool) {
		t.Helper()
		waitPolicy(t, p, timeout, what, cond)
	}
	waitPolicy(life, "the short-lived policy", func(ep apitypes.EffectivePolicy) bool { return ep.Name == "short-lived" && !ep.Expired })

	// The origin stops refreshing: an old timestamp, then nothing.
	origin.set("replay")
	waitPolicy(30*time.Second, "the replayed timestamp refused", func(ep apitypes.EffectivePolicy) bool {
		return strings.Contains(ep.LastError, "rollback") || strings.Contains(ep.LastError, "version")
	})
	origin.set("silent")
	waitPolicy(time.Until(expires)+time.Minute, "the policy expired", func(ep apitypes.EffectivePolicy) bool { return ep.Expired })

	// 1.1 appears; the agent plans it as expired and installs nothing.
	aptRepo.MustAdd(t, deb11)
	var planned apitypes.UpdateDecision
	waitFor(time.Minute, "acme-tool 1.1 planned as expired", func() (bool, string) {
		u, err := c.Updates(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, d := range u.Updates {
			if d.Package == "acme-tool" && d.Version == "1.1" {
				planned = d
				return d.Action == "expired", fmt.Sprintf("%+v", d)
			}
		}
		return false, fmt.Sprintf("no plan for acme-tool 1.1 in %+v", u.Updates)
	})
	if !strings.Contains(planned.Reason, "expired") {
		t.Errorf("planned reason %q does not say the policy expired", planned.Reason)
	}
	if _, err := c.Install(ctx, "acme-tool", ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("install --now with an expired policy: %v; want a refusal naming the expiry", err)
	}
	polSt := subsystem(t, c, "policy")
	if polSt.State != "expired" || !strings.Contains(polSt.Summary, "installing nothing new") {
		t.Errorf("status of the policy: %+v, want expired", polSt)
	}
	// Several planning cycles later, still nothing installed.
	waitFor(30*time.Second, "three more plans without an install", func() (bool, string) {
		u, err := c.Updates(ctx)
		if err != nil {
			return false, err.Error()
		}
		return u.Planned.After(planned.FirstSeen.Add(3 * time.Second)), u.Planned.String()
	})
	if txs, err := c.History(ctx, 0); err != nil || len(txs) != 0 {
		t.Fatalf("transactions under an expired policy: %+v (%v)", txs, err)
	}
	if v, _, err := sb.InstalledVersion(ctx, "acme-tool"); err != nil || v != "1.0" {
		t.Fatalf("acme-tool is at %q (%v) under an expired policy, want 1.0", v, err)
	}

	// A fresh policy resumes installs.
	setOffset(0)
	publish("fresh")
	origin.set("")
	waitFor(2*time.Minute, "acme-tool 1.1 installed under the fresh policy", func() (bool, string) {
		txs, err := c.History(ctx, 1)
		if err != nil {
			return false, err.Error()
		}
		if len(txs) == 0 {
			return false, "no transaction yet"
		}
		return txs[0].Outcome == "installed" && txs[0].Items[0].To == "1.1", fmt.Sprintf("%+v", txs[0])
	})
	if v, _, err := sb.InstalledVersion(ctx, "acme-tool"); err != nil || v != "1.1" {
		t.Fatalf("acme-tool is at %q (%v) under a fresh policy, want 1.1", v, err)
	}
	p.stop(t)
}
