package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// The self-update scene (issue #13): the agent's own package, patchring,
// goes through the rings like any catalog payload. Each agent runs as the
// service of its sandboxed root (selfService, the stand-in for an init
// system the site tests use too): the package's prerm stops it through the
// pid file, its postinst starts it through a FIFO.
const (
	selfOld, selfNew = "1.0", "1.1"
	// selfBuggy is the agent whose patchring 1.1 loses its local API.
	selfBuggy = "hq-desk-1"

	// selfPrerm stops the running agent as an init script would: SIGTERM
	// to the PID in the pid file, then wait until the service saw it exit
	// (it removes the pid file), at most 30 s. The scripts run on the host
	// with the sandbox in $DPKG_ROOT.
	selfPrerm = `#!/bin/sh
pidfile="$DPKG_ROOT/run/patchringd.pid"
case "$1" in
remove|upgrade|deconfigure)
	if [ -f "$pidfile" ]; then
		kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
		i=0
		while [ -f "$pidfile" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	fi
	;;
esac
exit 0
`
	// selfPostinst asks the root's service to start the agent now
	// installed, when the service runs.
	selfPostinst = `#!/bin/sh
ctl="$DPKG_ROOT/run/patchringd.ctl"
if [ "$1" = configure ] && [ -p "$ctl" ]; then
	timeout 10 sh -c 'echo start >"$1"' sh "$ctl" || echo "postinst: the service did not take the start request" >&2
fi
exit 0
`
	// selfLauncher is /usr/sbin/patchringd of patchring 1.1: it runs the
	// agent from /usr/lib/patchring. Its bug: on a machine with
	// /etc/patchring/legacy-api (only hq-desk-1 here) it removes the
	// agent's local API socket as soon as it appears, so that agent runs,
	// gossips and verifies its policy, but nothing reaches its API.
	selfLauncher = `#!/bin/sh
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -e "$root/etc/patchring/legacy-api" ]; then
	cfg=""; prev=""
	for a in "$@"; do [ "$prev" = --config ] && cfg=$a; prev=$a; done
	sock=$(sed -n 's/^socket: *//p' "$cfg")
	(
		i=0
		while [ $i -lt 600 ]; do
			if [ -S "$sock" ]; then rm -f "$sock"; exit 0; fi
			sleep 0.1; i=$((i+1))
		done
	) &
fi
exec "$root/usr/lib/patchring/patchringd" "$@"
`
)

// selfUpdate packages the agent (patchring 1.0 installed in every root,
// each agent restarted as its root's service from that package), publishes
// patchring 1.1 with `patchring catalog add` and follows it through the
// rings: every agent installs it detached, restarts into it and checks its
// own health; the one whose new agent fails its health check restores 1.0.
func (d *demo) selfUpdate(ctx context.Context, repoDir, keys string, builds *selfBuilds) error {
	d.step("the agent updates itself: patchring %s and %s built from this tree (go build -ldflags -X ...version.Version=V, started with the demo)", selfOld, selfNew)
	if builds.skip != "" {
		d.note("skipped: %s", builds.skip)
		return nil
	}
	<-builds.done
	if builds.err != nil {
		return builds.err
	}
	debs := builds.debs
	d.note("%s: the agent itself in /usr/sbin/patchringd; maintainer scripts stop it (prerm) and start it (postinst) through the root's service", filepath.Base(debs[selfOld]))
	d.note("%s: /usr/sbin/patchringd is a launcher for /usr/lib/patchring/patchringd with a bug: where /etc/patchring/legacy-api exists (only on %s) it removes the agent's local API socket", filepath.Base(debs[selfNew]), selfBuggy)

	d.step("the agents are installed like real software: each runs as the service of its root, from the installed package patchring %s (until now the demo ran them from bin/)", selfOld)
	if err := d.seedAllMembers(); err != nil {
		return err
	}
	d.note("each agent's gossip seeds now name every other member of its site: a restarted agent, the site's first one included, must find a live member to pass its health check")
	for _, a := range d.debAgents() {
		if err := a.sb.DpkgInstall(ctx, debs[selfOld]); err != nil {
			return fmt.Errorf("%s: install patchring %s: %w", a.name, selfOld, err)
		}
		if a.name == selfBuggy {
			if err := os.MkdirAll(a.sb.Path("etc/patchring"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(a.sb.Path("etc/patchring/legacy-api"), nil, 0o644); err != nil {
				return err
			}
		}
		stopAgent(a)
		sv, err := startSelfService(a, filepath.Join(a.dir, "patchringd.yaml"))
		if err != nil {
			return err
		}
		d.cleanups = append(d.cleanups, func() {
			if err := sv.close(); err != nil {
				fmt.Fprintf(os.Stderr, "%s's service: %v\n", a.name, err)
			}
		})
		d.note("%-15s agent pid %d runs %s", a.name, sv.pid(), sv.bin)
	}
	d.note("the running version goes into the catalog too: a failed self-update goes back to it")
	if err := d.cli(ctx, "catalog", "add", debs[selfOld], "--package", "patchring", "--version", selfOld, "--repo", repoDir, "--keys", keys); err != nil {
		return err
	}
	before := map[string]string{}
	for _, a := range d.debAgents() {
		if err := d.poll(ctx, a, "the packaged agent's local API", func() (bool, error) {
			st, err := a.client.Status(ctx)
			if err == nil {
				before[a.name] = st.Version
			}
			return err == nil && st.Version == selfOld, err
		}); err != nil {
			return err
		}
	}

	d.step("admin: publish patchring %s, the agent's next version, in the signed catalog", selfNew)
	if err := d.cli(ctx, "catalog", "add", debs[selfNew], "--package", "patchring", "--version", selfNew, "--repo", repoDir, "--keys", keys); err != nil {
		return err
	}
	released := time.Now()
	d.note("the same rings as acme-tool: lab at once, pilot after 12s, broad once its site's pilot succeeded; the new agent must be healthy within 15s (self_update.health_deadline)")
	if err := d.followSelf(ctx, released); err != nil {
		return err
	}

	d.step("each agent's version before and after, and its self-update's health check")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "          NODE\tRING\tAGENT BEFORE\tAGENT AFTER\tPACKAGE\tSELF-UPDATE\tHEALTH CHECK")
	for _, a := range d.debAgents() {
		v := d.selfView(ctx, a)
		fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.name, v.ring, before[a.name], v.agent, v.pkg, v.outcome, v.health)
	}
	tw.Flush()
	d.step("%s's new agent lost its local API: at its health deadline it restored patchring %s (detached); the failure gossips to the site and holds later rings' gates", selfBuggy, selfOld)
	return d.cli(ctx, "--socket", d.agentNamed(selfBuggy).sock, "history", "--limit", "1")
}

// seedAllMembers rewrites each agent's config (read at its next start) so
// that its gossip seeds are every other member of its site: with the
// site's first agent as everyone's only seed, that agent, restarted, would
// have no one to join.
func (d *demo) seedAllMembers() error {
	cfgs := map[*agent]map[string]any{}
	addrs := map[*agent]string{}
	for _, a := range d.agents {
		file := filepath.Join(a.dir, "patchringd.yaml")
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		g, _ := cfg["gossip"].(map[string]any)
		listen, _ := g["listen"].(string)
		if listen == "" {
			return fmt.Errorf("%s: no gossip.listen", file)
		}
		cfgs[a], addrs[a] = cfg, listen
	}
	for _, a := range d.agents {
		var seeds []string
		for _, b := range d.agents {
			if b != a && b.site == a.site {
				seeds = append(seeds, addrs[b])
			}
		}
		cfgs[a]["gossip"].(map[string]any)["seeds"] = seeds
		raw, err := yaml.Marshal(cfgs[a])
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(a.dir, "patchringd.yaml"), raw, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// selfBuilds are the agent's two packages, built in the background while
// the demo's first scenes run (linking patchringd takes a while).
type selfBuilds struct {
	skip string // why there is no self-update scene
	done chan struct{}
	debs map[string]string // version -> .deb, once done is closed
	err  error
}

// buildSelf starts building patchring selfOld and selfNew.
func (d *demo) buildSelf(ctx context.Context) *selfBuilds {
	b := &selfBuilds{done: make(chan struct{}), debs: map[string]string{}}
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.skip = fmt.Sprintf("building the agent's versions needs the go command (%v)", err)
		close(b.done)
		return b
	}
	dir := filepath.Join(d.work, "selfupdate")
	go func() {
		defer close(b.done)
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, v := range []string{selfOld, selfNew} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deb, err := buildSelfDeb(ctx, goTool, dir, v, v == selfNew)
				mu.Lock()
				b.debs[v], errs[i] = deb, err
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.err = errors.Join(errs...)
	}()
	// The builds end before the demo's work tree is removed.
	d.cleanups = append(d.cleanups, func() { <-b.done })
	return b
}

// buildSelfDeb builds patchringd at version and packages it as patchring
// version (with dpkg-deb: the binary is tens of megabytes). buggy: the
// launcher of selfLauncher in front of the agent.
func buildSelfDeb(ctx context.Context, goTool, dir, version string, buggy bool) (string, error) {
	stage := filepath.Join(dir, "patchring-"+version)
	for _, sub := range []string{"DEBIAN", "usr/sbin", "usr/lib/patchring"} {
		if err := os.MkdirAll(filepath.Join(stage, sub), 0o755); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(stage, "usr/sbin/patchringd")
	if buggy {
		bin = filepath.Join(stage, "usr/lib/patchring/patchringd")
		if err := os.WriteFile(filepath.Join(stage, "usr/sbin/patchringd"), []byte(selfLauncher), 0o755); err != nil {
			return "", err
		}
	}
	build := exec.CommandContext(ctx, goTool, "build", "-ldflags", "-s -w -X github.com/patchring/patchring/internal/version.Version="+version,
		"-o", bin, "github.com/patchring/patchring/cmd/patchringd")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build patchringd %s (run the demo from the source tree): %v\n%s", version, err, out)
	}
	control := "Package: patchring\nVersion: " + version + "\nArchitecture: " + apttest.DefaultArch +
		"\nMaintainer: patchring demo <demo@patchring.invalid>\nDescription: patchring agent (demo build)\n"
	for name, body := range map[string]string{"control": control, "prerm": selfPrerm, "postinst": selfPostinst} {
		mode := os.FileMode(0o755)
		if name == "control" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(stage, "DEBIAN", name), []byte(body), mode); err != nil {
			return "", err
		}
	}
	deb := filepath.Join(dir, "patchring_"+version+"_"+apttest.DefaultArch+".deb")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", stage, deb).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build %s: %v\n%s", stage, err, out)
	}
	return deb, os.RemoveAll(stage)
}

type selfRow struct {
	ring, agent, pkg, outcome, health string
	done                              bool
}

// selfView is what an agent says of its self-update to selfNew.
func (d *demo) selfView(ctx context.Context, a *agent) selfRow {
	r := selfRow{agent: "(restarting)", pkg: "?", outcome: "-", health: "-"}
	if st, err := a.client.Status(ctx); err == nil {
		r.agent = st.Version
	}
	if p, err := a.client.Policy(ctx); err == nil {
		r.ring = p.Ring
	}
	if v, _, err := a.sb.InstalledVersion(ctx, "patchring"); err == nil {
		r.pkg = v
	}
	// The history comes from the agent's API: read it from its state
	// while a restart is under way would race the new agent, so a row
	// keeps "-" until the API answers.
	txs, err := a.client.History(ctx, 5)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			r.outcome = "(agent restarting)"
		}
		return r
	}
	for _, t := range txs {
		if !selfTx(t, selfNew) {
			continue
		}
		r.outcome = fmt.Sprintf("#%d %s", t.ID, orOpen(t.Outcome))
		r.done = t.Outcome != ""
		if n := len(t.Steps); n > 0 && !r.done {
			r.outcome += ": " + t.Steps[n-1].Name
		}
		for _, s := range t.Steps {
			if s.Name != "self-health" {
				continue
			}
			switch s.Status {
			case "started":
				r.health = "checking"
			case "done":
				r.health = "passed: local API answers, gossip rejoined, policy verified"
			default:
				r.health = s.Status
			}
		}
		if t.Outcome == "rolled-back" {
			r.health = "failed: " + firstLine(t.Error, 70)
		}
		break
	}
	return r
}

// selfTx says whether t updates the agent's own package to version.
func selfTx(t apitypes.Transaction, version string) bool {
	for _, it := range t.Items {
		if it.Package == "patchring" && it.To == version {
			return true
		}
	}
	return false
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

// followSelf prints the fleet's self-update whenever it changes, until
// every agent ended its transaction to selfNew and runs an agent again.
func (d *demo) followSelf(ctx context.Context, released time.Time) error {
	last := ""
	for {
		var lines []string
		rows := map[string]selfRow{}
		done := 0
		for _, a := range d.debAgents() {
			r := d.selfView(ctx, a)
			rows[a.name] = r
			if r.done && r.agent != "(restarting)" {
				done++
			}
			// A new table when an agent, its package or its transaction's
			// outcome changes (not at every journaled step).
			outcome, _, _ := strings.Cut(r.outcome, ":")
			lines = append(lines, a.name+":"+r.agent+"/"+r.pkg+"/"+outcome)
		}
		sort.Strings(lines)
		if s := strings.Join(lines, " "); s != last {
			last = s
			d.step("agents %.0fs after patchring %s was published:", time.Since(released).Seconds(), selfNew)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "          NODE\tRING\tAGENT\tPACKAGE\tSELF-UPDATE")
			for _, a := range d.debAgents() {
				r := rows[a.name]
				fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%s\n", a.name, r.ring, r.agent, r.pkg, r.outcome)
			}
			tw.Flush()
		}
		if done == len(d.debAgents()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent's self-update did not reach every ring: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
