//go:build linux

package sitetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/filetail"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/dnf/dnftest"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// patchringd is the agent binary the tests run, built once, on first use.
var patchringd = &testutil.Binary{Pkg: "github.com/patchring/patchring/cmd/patchringd"}

func TestMain(m *testing.M) {
	code := m.Run()
	patchringd.Remove()
	patchringCLI.Remove()
	agent10.Remove()
	agent11.Remove()
	os.Exit(code)
}

// siteConfig describes a test site.
type siteConfig struct {
	Nodes int
	Rate  string // tc rate of the WAN, e.g. "20mbit"
	// Hostname of node i; default "desk-NN".
	Hostname func(i int) string
	// Keys are the nodes' identities (node i gets Keys[i]); missing ones
	// are generated. Tests that need to know the rendezvous order before
	// the nodes start pass them.
	Keys []crypto.PrivKey
	// Intervals of the agents.
	AptCheck, AptRefresh, PolicyRefresh time.Duration
	// Installed are more packages every node has before acme-tool 1.0
	// (they are added to the vendor's repository too).
	Installed []apttest.Package
	// Preinstall are more packages (.deb files) every node has installed
	// before its agent starts, next to acme-tool 1.0.
	Preinstall []string
	// Credential returns the credential node i gets: nil issues the normal
	// one (site branch, no tags, valid for 30 days) for every node; a
	// function returning nil for a node gives it none (an outsider that
	// holds only the gossip key).
	Credential func(t testing.TB, i int, id string) []byte
	// Enroll returns the enrollment token file node i enrolls with
	// (`patchringd enroll @FILE` inside its namespace, before it starts):
	// set, no credential is installed by the test, and the node's trusted
	// root is the one enrollment writes beside its config.
	Enroll func(t testing.TB, i int) string
	// Tags returns the tags node i's local config claims (nil: none).
	Tags func(i int) []string
	// Repo is the vendor's repository; zero: unsigned, Origin Acme, Suite
	// stable.
	Repo apttest.RepoConfig
	// AptProxy turns on every agent's apt proxy (apt.proxy.enabled): the
	// agent writes its snippet into the node's apt root.
	AptProxy bool
	// ReportInterval is the agents' console report interval (default 15m).
	ReportInterval time.Duration
	// Devices are more namespaces on the site's LAN that run no agent
	// (s.net.nodes[Nodes:], addresses nodeIP(Nodes+i)).
	Devices int
	// Service runs every agent as the service of its sandbox (see
	// service): the patchringd that the package patchring installed in
	// the sandbox, started and stopped by that package's maintainer
	// scripts, as an init system would. Preinstall must hold a patchring
	// package built by selfDeb.
	Service bool
	// TUFExpiries are the signed repository's metadata lifetimes by role
	// (tufrepo.Options.Expiries); nil: tufrepo's defaults.
	TUFExpiries map[string]time.Duration
	// Site is node i's site (its config and the credential the test
	// issues); nil: every node is in "branch". Nodes of every site share
	// the LAN and the gossip key: a site is what the credentials say.
	Site func(i int) string
	// RPM, if set, makes node i an rpm-based machine when it returns
	// true: a dnf sandbox root (rpm database) with the vendor's signed dnf
	// repository behind the WAN (originIP:8082) and acme-tool 1.0 as an
	// .rpm, and an agent that drives dnf (apt.manager: dnf).
	RPM func(i int) bool
}

// testSite is a running site: the network, the origin and the nodes.
type testSite struct {
	cfg     siteConfig
	dir     string
	net     *topo
	origin  *origin
	keyFile string
	deb10   string
	size10  int64
	base    []string // siteConfig.Installed's payloads
	nodes   []*node
	// dnfRepo is the vendor's dnf repository (siteConfig.RPM), and
	// rpm10 acme-tool 1.0 as an .rpm, which its rpm nodes have installed.
	dnfRepo *dnftest.Repo
	rpm10   string
}

// node is one patchringd process in its own namespace.
type node struct {
	hostname string
	ns, ip   string
	dir      string
	sock     string
	logPath  string
	id       peer.ID
	sb       *apttest.Sandbox // a Debian node's root
	rsb      *dnftest.Sandbox // an rpm node's root (siteConfig.RPM)
	c        *client.Client

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	killed bool // killed on purpose by the test
	// enrollOutput is what `patchringd enroll` printed (siteConfig.Enroll).
	enrollOutput string
	// svc runs the agent when siteConfig.Service is set (cmd is then nil).
	svc *service
}

func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the node's log.
func (n *node) logTail(lines int) string { return filetail.Lines(n.logPath, lines) }

// kill sends SIGKILL to the node's process (by the PID the test started)
// and waits for it.
func (n *node) kill(t testing.TB) {
	t.Helper()
	n.killed = true
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s (pid %d): %v", n.hostname, n.cmd.Process.Pid, err)
	}
	<-n.done
}

// acmeTool is the vendor's package; payloadBytes of random content make
// its .deb about that big (random data does not compress).
func acmeTool(version string, payloadBytes int) apttest.Package {
	files := []apttest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte(version + "\n")}}
	if payloadBytes > 0 {
		blob := make([]byte, payloadBytes)
		if _, err := rand.Read(blob); err != nil {
			panic(err)
		}
		files = append(files, apttest.File{Path: "/usr/share/acme-tool/data.bin", Body: blob})
	}
	return apttest.Package{Name: "acme-tool", Version: version, Description: "Acme's tool (patchring site test package)", Files: files}
}

// newSite builds the network and the origin, and acme-tool 1.0 (small)
// in the vendor's repository. Nodes start with startNodes.
func newSite(t testing.TB, cfg siteConfig) *testSite {
	t.Helper()
	apttest.RequireTools(t)
	if cfg.Rate == "" {
		cfg.Rate = "20mbit"
	}
	if cfg.Hostname == nil {
		cfg.Hostname = func(i int) string { return fmt.Sprintf("desk-%02d", i) }
	}
	// Each check runs dpkg-query and apt-cache twice, each refresh apt-get
	// update: at 3 s and 5 s that was about 40% of a sitetest agent's CPU, and
	// the agents were half of make test's (measured on two cores).
	if cfg.AptCheck == 0 {
		cfg.AptCheck = 5 * time.Second
	}
	if cfg.AptRefresh == 0 {
		cfg.AptRefresh = 10 * time.Second
	}
	if cfg.PolicyRefresh == 0 {
		cfg.PolicyRefresh = 2 * time.Second
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = 15 * time.Minute
	}
	s := &testSite{cfg: cfg, dir: t.TempDir()}
	s.net = newTopo(t, cfg.Nodes+cfg.Devices, cfg.Rate)
	s.origin = startOrigin(t, s.net, s.dir, cfg.Repo, cfg.TUFExpiries)
	debs := filepath.Join(s.dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Installed {
		deb := apttest.MustBuildDeb(t, debs, p)
		s.origin.apt.MustAdd(t, deb)
		s.base = append(s.base, deb)
	}
	s.deb10 = apttest.MustBuildDeb(t, debs, acmeTool("1.0", 0))
	s.size10 = fileSize(t, s.deb10)
	s.origin.apt.MustAdd(t, s.deb10)
	if cfg.RPM != nil {
		s.startDnfRepo(t)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s.keyFile = filepath.Join(s.dir, "gossip.key")
	if err := os.WriteFile(s.keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range s.nodes {
				t.Logf("---- %s (%s, %s) log tail:\n%s", n.hostname, n.ip, n.id, n.logTail(25))
			}
		}
		// PATCHRING_SITETEST_LOGS=DIR keeps every node's log for a look
		// at the timeline.
		if dir := os.Getenv("PATCHRING_SITETEST_LOGS"); dir != "" {
			dst := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Errorf("keep logs: %v", err)
				return
			}
			for _, n := range s.nodes {
				if data, err := os.ReadFile(n.logPath); err == nil {
					_ = os.WriteFile(filepath.Join(dst, n.hostname+".log"), data, 0o644)
				}
			}
			t.Logf("node logs kept in %s", dst)
		}
	})
	return s
}

// startDnfRepo starts the vendor's dnf repository (gpg-signed repomd.xml
// and packages) with acme-tool 1.0, served inside the origin namespace on
// originIP:8082 for the site's rpm nodes.
func (s *testSite) startDnfRepo(t testing.TB) {
	t.Helper()
	if err := dnftest.CheckTools(); err != nil {
		t.Fatal(err)
	}
	signer, err := dnftest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { signer.Close() })
	s.dnfRepo = dnftest.MustStartRepo(t, dnftest.RepoConfig{Signer: signer})
	rpms := filepath.Join(s.dir, "rpms")
	if err := os.MkdirAll(rpms, 0o755); err != nil {
		t.Fatal(err)
	}
	s.rpm10, err = dnftest.BuildRPM(rpms, dnftest.Package{Name: "acme-tool", Version: "1.0",
		Files: []dnftest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.0\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	s.dnfRepo.MustAdd(t, s.rpm10)
	serve(t, s.net.origin, originIP+":8082", s.dnfRepo.Handler())
}

// buildPayload builds acme-tool at version with about payloadBytes of
// content; it is not yet in the repository.
func (s *testSite) buildPayload(t testing.TB, version string, payloadBytes int) (string, int64) {
	t.Helper()
	deb := apttest.MustBuildDeb(t, filepath.Join(s.dir, "debs"), acmeTool(version, payloadBytes))
	return deb, fileSize(t, deb)
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// startNodes prepares every node's sandbox (acme-tool 1.0 installed) and
// starts its patchringd inside its namespace. The first three nodes are
// the gossip seeds.
func (s *testSite) startNodes(t testing.TB) {
	t.Helper()
	s.nodes = make([]*node, s.cfg.Nodes)
	var seeds []string
	for i := 0; i < min(3, s.cfg.Nodes); i++ {
		seeds = append(seeds, nodeIP(i)+":7946")
	}
	// Sandboxes in parallel (dpkg -i is the slow part), two at a time.
	errs := make([]error, s.cfg.Nodes)
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i := range s.cfg.Nodes {
		n, err := s.prepareNode(i)
		if err != nil {
			t.Fatal(err)
		}
		// The admin-signed credential, as enrollment would install it.
		var cred []byte
		switch {
		case s.cfg.Enroll != nil:
			// The node enrolls itself in startNode.
		case s.cfg.Credential != nil:
			cred = s.cfg.Credential(t, i, n.id.String())
		default:
			_, cred = s.origin.ca.Issue(t, n.id.String(), credtest.Spec{Hostname: n.hostname, Site: s.siteOf(i)})
		}
		if cred != nil {
			credtest.WriteFile(t, filepath.Join(n.dir, "state"), cred)
		}
		s.nodes[i] = n
		if n.rsb != nil {
			t.Cleanup(func() { _ = n.rsb.Close() })
		} else {
			t.Cleanup(func() { _ = n.sb.Close() })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if n.rsb != nil {
				_, errs[i] = n.rsb.Run(ctx, "rpm", "-i", s.rpm10)
				return
			}
			errs[i] = n.sb.DpkgInstall(ctx, append(append(append([]string{}, s.base...), s.deb10), s.cfg.Preinstall...)...)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("prepare sandboxes: %v", err)
	}
	// Stop them all at once when the test ends: SIGTERM to every node,
	// then wait for each (SIGKILL after 15 s).
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range s.nodes {
			if n.cmd == nil || n.cmd.Process == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); n.stop() }()
		}
		wg.Wait()
	})
	for _, n := range s.nodes {
		s.startNode(t, n, seeds)
	}
}

func (s *testSite) prepareNode(i int) (*node, error) {
	n := &node{hostname: s.cfg.Hostname(i), ns: s.net.nodes[i], ip: nodeIP(i), dir: filepath.Join(s.dir, fmt.Sprintf("n%02d", i))}
	n.sock = filepath.Join(n.dir, "api.sock")
	n.logPath = filepath.Join(n.dir, "patchringd.log")
	n.c = &client.Client{Socket: n.sock}
	if err := os.MkdirAll(filepath.Join(n.dir, "state"), 0o700); err != nil {
		return nil, err
	}
	var key crypto.PrivKey
	if i < len(s.cfg.Keys) && s.cfg.Keys[i] != nil {
		key = s.cfg.Keys[i]
	} else {
		var err error
		if key, _, err = crypto.GenerateEd25519Key(nil); err != nil {
			return nil, err
		}
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The daemon's node.key (libp2p's encoding), so the test knows the
	// node IDs, and therefore the rendezvous order, in advance.
	if err := os.WriteFile(filepath.Join(n.dir, "state", "node.key"), raw, 0o600); err != nil {
		return nil, err
	}
	if n.id, err = peer.IDFromPrivateKey(key); err != nil {
		return nil, err
	}
	if s.cfg.RPM != nil && s.cfg.RPM(i) {
		if n.rsb, err = dnftest.NewSandbox(dnftest.SandboxOptions{TempDir: n.dir}); err != nil {
			return nil, err
		}
		return n, n.rsb.AddRepo("acme", s.dnfRepo, dnftest.RepoOptions{BaseURL: "http://" + originIP + ":8082/"})
	}
	if n.sb, err = apttest.NewSandbox(apttest.SandboxOptions{TempDir: n.dir}); err != nil {
		return nil, err
	}
	if err := n.sb.AddSource("acme", s.origin.sourcesLine()); err != nil {
		return nil, err
	}
	return n, nil
}

// startNode writes the node's configuration and starts `patchringd run`
// with `ip netns exec` (which execs the daemon: the PID the test holds is
// the daemon's). startNodes stops it (SIGTERM, then SIGKILL) and waits for
// it when the test ends.
func (s *testSite) startNode(t testing.TB, n *node, seeds []string) {
	t.Helper()
	rootFile, tags := s.origin.rootFile, ""
	if s.cfg.Enroll != nil {
		rootFile = filepath.Join(n.dir, "root.json") // written by enrollment
	}
	if s.cfg.Tags != nil {
		if claimed := s.cfg.Tags(s.indexOf(n)); len(claimed) > 0 {
			tags = "tags: [" + strings.Join(claimed, ", ") + "]\n"
		}
	}
	var pkgs string
	if n.rsb == nil {
		pkgs = fmt.Sprintf(`apt:
  enabled: true
  root: %s
  apt_config: %s
  check_interval: %s
  refresh_interval: %s
  proxy:
    enabled: %t
`, n.sb.Root, n.sb.AptConfig, s.cfg.AptCheck, s.cfg.AptRefresh, s.cfg.AptProxy)
	} else {
		// dnf_args point dnf at the sandbox's dnf.conf and repositories
		// (the agent adds --installroot itself).
		var args []string
		for _, a := range n.rsb.DNFArgs()[2:] {
			args = append(args, fmt.Sprintf("%q", a))
		}
		pkgs = fmt.Sprintf(`apt:
  enabled: true
  manager: dnf
  root: %s
  dnf_args: [%s]
  check_interval: %s
  refresh_interval: %s
`, n.rsb.Root, strings.Join(args, ", "), s.cfg.AptCheck, s.cfg.AptRefresh)
	}
	cfg := fmt.Sprintf(`state_dir: %s
socket: %s
hostname: %s
site: %s
%slog_level: info
%spolicy:
  origin: %s
  root_file: %s
  refresh_interval: %s
reboot:
  command: ["/bin/true"]
report:
  interval: %s
gossip:
  enabled: true
  listen: %s:7946
  seeds: [%s]
  key_file: %s
  label: sitetest
p2p:
  enabled: true
  listen: /ip4/%s/tcp/4001
`, filepath.Join(n.dir, "state"), n.sock, n.hostname, s.siteOf(s.indexOf(n)), tags, pkgs,
		s.origin.policyURL(), rootFile, s.cfg.PolicyRefresh, s.cfg.ReportInterval, n.ip, strings.Join(seeds, ", "), s.keyFile, n.ip)
	cfgFile := filepath.Join(n.dir, "patchringd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.cfg.Enroll != nil {
		s.enroll(t, n, cfgFile, s.cfg.Enroll(t, s.indexOf(n)))
	}
	if s.cfg.Service {
		n.svc = startService(t, n, cfgFile)
		return
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = nsCommand(n.ns, patchringd.Path(t), "run", "--config", cfgFile)
	if n.rsb != nil {
		n.cmd.Env = append(os.Environ(), n.rsb.Env()...) // rpm's macros: its database in the root
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Should the test process die without its cleanup (a go test
	// timeout), the kernel kills the daemon: no orphaned agents.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testutil.Start(n.cmd); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", n.hostname, err)
	}
	n.done = make(chan struct{})
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
}

// siteOf is node i's site (siteConfig.Site).
func (s *testSite) siteOf(i int) string {
	if s.cfg.Site == nil {
		return "branch"
	}
	return s.cfg.Site(i)
}

// enroll runs `patchringd enroll --config cfgFile @token` inside n's
// namespace: the node reaches the token's issuing service and origin over
// the site's WAN like any blank machine would.
func (s *testSite) enroll(t testing.TB, n *node, cfgFile, token string) {
	t.Helper()
	out, err := s.enrollIn(n.ns, cfgFile, token)
	if err != nil {
		t.Fatalf("%s: patchringd enroll: %v\n%s", n.hostname, err, out)
	}
	n.enrollOutput = out
}

// enrollIn runs `patchringd enroll --config cfgFile @token` inside
// namespace ns and returns what it printed.
func (s *testSite) enrollIn(ns, cfgFile, token string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, err := patchringd.Build()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bin, "enroll", "--config", cfgFile, "@"+token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := testutil.CombinedOutput(cmd)
	return string(out), err
}

// indexOf returns n's index in the site.
func (s *testSite) indexOf(n *node) int {
	for i, m := range s.nodes {
		if m == n {
			return i
		}
	}
	panic("node " + n.hostname + " is not in the site")
}

// stop ends the node: SIGTERM, and SIGKILL if it has not exited within 15 s.
func (n *node) stop() {
	if n.exited() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-n.done:
	case <-t.C:
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

// members are the nodes as rendezvous members.
func members(nodes []*node) []site.Member {
	out := make([]site.Member, len(nodes))
	for i, n := range nodes {
		out[i] = site.Member{ID: n.id.String()}
	}
	return out
}

// byID finds the node with id.
func (s *testSite) byID(id string) *node {
	for _, n := range s.nodes {
		if n.id.String() == id {
			return n
		}
	}
	return nil
}

// waitFor polls cond every 250 ms until it holds or timeout passes; it
// fails t naming what it waited for and cond's last report. A node that
// exits unless the test killed it fails t at once.
func (s *testSite) waitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	err := testutil.PollEvery(timeout, 250*time.Millisecond, func() error {
		for _, n := range s.nodes {
			if n != nil && n.svc == nil && n.cmd != nil && !n.killed && n.exited() {
				t.Fatalf("waiting for %s: %s exited: %v\n%s", what, n.hostname, n.err, n.logTail(40))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, report := cond(ctx); !ok {
			return errors.New(report)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s; last: %v", what, timeout, err)
	}
}

// alive are the nodes the test did not kill.
func (s *testSite) alive() []*node {
	var out []*node
	for _, n := range s.nodes {
		if !n.killed {
			out = append(out, n)
		}
	}
	return out
}

// waitConverged waits until every live node answers, holds a verified
// policy named policyName and sees every other live node alive in its
// gossip pool, so that all of them compute the same rendezvous order.
func (s *testSite) waitConverged(t testing.TB, timeout time.Duration, policyName string) {
	t.Helper()
	nodes := s.alive()
	s.waitFor(t, timeout, "a converged site", func(ctx context.Context) (bool, string) {
		for _, n := range nodes {
			p, err := n.c.Policy(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: policy: %v", n.hostname, err)
			}
			if p.Name != policyName {
				return false, fmt.Sprintf("%s holds policy %q (last error %q), want %q", n.hostname, p.Name, p.LastError, policyName)
			}
			f, err := n.c.Fleet(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: fleet: %v", n.hostname, err)
			}
			alive := 0
			for _, m := range f.Members {
				if m.Liveness == "alive" && slices.ContainsFunc(nodes, func(o *node) bool { return s.siteOf(s.indexOf(o)) == m.Site }) {
					alive++
				}
			}
			if alive != len(nodes) {
				return false, fmt.Sprintf("%s sees %d of %d members alive", n.hostname, alive, len(nodes))
			}
		}
		return true, ""
	})
}

// waitAction waits until every node in nodes plans acme-tool version with
// one of the actions.
func (s *testSite) waitAction(t testing.TB, nodes []*node, timeout time.Duration, version string, actions ...string) {
	t.Helper()
	s.waitFor(t, timeout, fmt.Sprintf("acme-tool %s planned as %v", version, actions), func(ctx context.Context) (bool, string) {
		for _, n := range nodes {
			u, err := n.c.Updates(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: updates: %v", n.hostname, err)
			}
			found := ""
			for _, d := range u.Updates {
				if d.Package == "acme-tool" && d.Version == version {
					found = d.Action
				}
			}
			ok := false
			for _, a := range actions {
				ok = ok || found == a
			}
			if !ok {
				return false, fmt.Sprintf("%s plans acme-tool %s as %q", n.hostname, version, found)
			}
		}
		return true, ""
	})
}

// waitInstalled waits until every node in nodes reports a finished install
// of acme-tool version; it fails at once on a failed transaction.
func (s *testSite) waitInstalled(t testing.TB, nodes []*node, timeout time.Duration, version string) {
	t.Helper()
	s.waitFor(t, timeout, "acme-tool "+version+" installed everywhere", func(ctx context.Context) (bool, string) {
		waiting := 0
		first := ""
		for _, n := range nodes {
			txs, err := n.c.History(ctx, 1)
			if err != nil {
				return false, fmt.Sprintf("%s: history: %v", n.hostname, err)
			}
			if len(txs) > 0 && len(txs[0].Items) > 0 && txs[0].Items[0].To == version {
				switch txs[0].Outcome {
				case "installed":
					continue
				case "":
				default:
					t.Fatalf("%s: transaction %d %s: %s\n%s", n.hostname, txs[0].ID, txs[0].Outcome, txs[0].Error, n.logTail(40))
				}
			}
			waiting++
			if first == "" {
				first = n.hostname
			}
		}
		return waiting == 0, fmt.Sprintf("%d nodes not done, e.g. %s", waiting, first)
	})
	// What dpkg says, not only what the agent reports.
	for _, n := range nodes {
		v, st, err := n.sb.InstalledVersion(context.Background(), "acme-tool")
		if err != nil || v != version || st != "ii " {
			t.Fatalf("%s: dpkg reports acme-tool %q %q (%v), want %s installed", n.hostname, v, st, err, version)
		}
	}
}
