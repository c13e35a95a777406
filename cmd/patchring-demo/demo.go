package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/filetail"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/tufrepo"
)

// agentSpec describes one simulated endpoint.
type agentSpec struct {
	name, site   string
	tags         []string
	broken       bool // its acme-tool health check fails
	noCredential bool // an intruder: the gossip key, no credential
	rpm          bool // rpm-based: dnf drives its root (demo_rpm.go)
	// netns and ip: the agent runs in that network namespace and listens
	// on ip (the ship, demo_ship_linux.go); "" for loopback.
	netns, ip string
}

// tagList is the spec's tags for a table: comma-separated, or "-".
func (s agentSpec) tagList() string {
	if len(s.tags) == 0 {
		return "-"
	}
	return strings.Join(s.tags, ",")
}

var fleet = []agentSpec{
	{name: "hq-lab-1", site: "hq", tags: []string{"lab"}},
	{name: "hq-pilot-1", site: "hq", tags: []string{"pilot"}},
	{name: "hq-rpm-1", site: "hq", tags: []string{"lab"}, rpm: true},
	{name: "hq-desk-1", site: "hq"},
	{name: "branch-pilot-1", site: "branch", tags: []string{"pilot"}},
	{name: "branch-desk-1", site: "branch"},
	{name: "branch-desk-2", site: "branch", broken: true},
}

// shipFleet are the ship's agents: a pilot and two broad nodes, whose
// ring waits for the ship's pilot (a gate fed by gossip, offline too).
// Three, because a node that follows newer metadata from its peers with
// the origin down needs a second peer to confirm the root (docs/P2P.md).
var shipFleet = []agentSpec{
	{name: "ship-pilot-1", site: "ship", tags: []string{"pilot"}},
	{name: "ship-desk-1", site: "ship"},
	{name: "ship-desk-2", site: "ship"},
}

type agent struct {
	agentSpec
	dir    string
	sock   string
	sb     *apttest.Sandbox
	cmd    *exec.Cmd
	done   chan error
	client *client.Client
	// installed reads a package's version in an rpm agent's root.
	installed func(ctx context.Context, pkg string) (string, error)
}

// version is pkg's installed version in the agent's package root.
func (a *agent) version(ctx context.Context, pkg string) (string, error) {
	if a.installed != nil {
		return a.installed(ctx, pkg)
	}
	v, _, err := a.sb.InstalledVersion(ctx, pkg)
	return v, err
}

type demo struct {
	bin, work string
	keep      bool
	cleanups  []func()

	origin        *httptest.Server
	seeds         map[string]string // site -> gossip address of its first agent
	gossipKeyFile string
	// service is the issuing service's URL (patchring ca serve) and
	// tokens the enrollment token file of each site/tags group.
	service string
	tokens  map[string]string
	aptRepo *apttest.Repo
	agents  []*agent
	// ship are the offline site's agents, shipBundles the bundles carried
	// to it, shipCopies the vendor copies the admin's bundles took since
	// the release, aptKeyring the vendor's key (demo_ship_linux.go).
	ship        []*agent
	shipBundles [2]string
	shipCopies  int
	aptKeyring  string
	start       time.Time
	console     *demoConsole // demo_console.go
	aptMark     int          // the vendor's requests before the release (demo_apt.go)
	// rootImage receives the restart scene's Debian root image build
	// result (demo_restart.go); nil without mmdebstrap.
	rootImage chan error
	// releaseRPM publishes the patch in the rpm agent's dnf repository.
	releaseRPM func() error // demo_rpm.go
}

func newDemo(bin string, keep bool) (*demo, error) {
	bin, _ = filepath.Abs(bin)
	for _, b := range []string{"patchringd", "patchring"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run make build first", b, bin)
		}
	}
	if err := apttest.CheckTools(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "patchring-demo-*")
	if err != nil {
		return nil, err
	}
	d := &demo{bin: bin, work: work, keep: keep, start: time.Now(), seeds: map[string]string{}}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	d.gossipKeyFile = filepath.Join(work, "gossip.key")
	if err := os.WriteFile(d.gossipKeyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *demo) close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	if d.keep {
		fmt.Println("demo files kept in", d.work)
		return
	}
	os.RemoveAll(d.work)
}

func (d *demo) step(format string, args ...any) {
	fmt.Printf("\n[%5.1fs] ==> %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) note(format string, args ...any) {
	fmt.Printf("          %s\n", fmt.Sprintf(format, args...))
}

// cli runs the real patchring CLI and prints what it prints.
func (d *demo) cli(ctx context.Context, args ...string) error {
	fmt.Printf("\n          $ patchring %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "patchring"), args...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("          " + line)
	}
	if err != nil {
		return fmt.Errorf("patchring %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) run(ctx context.Context) error {
	fmt.Println("patchring demo: one origin, three sites (one of them offline), nine agents (eight Debian, one rpm-based) with sandboxed package roots, one signed policy, one real patch.")
	builds := d.buildSelf(ctx) // demo_selfupdate.go
	d.prepareRootImage(ctx)    // demo_restart.go

	// 1. The admin's signed repository.
	d.step("admin: create the fleet's signed (TUF) repository and publish the ring policy")
	repoDir, keys := filepath.Join(d.work, "origin"), filepath.Join(d.work, "admin-keys")
	polFile := filepath.Join(d.work, "policy.yaml")
	if err := os.WriteFile(polFile, demoPolicy, 0o644); err != nil {
		return err
	}
	if err := d.cli(ctx, "repo", "init", "--repo", repoDir, "--keys", keys); err != nil {
		return err
	}
	if err := d.startConsole(ctx, polFile, repoDir); err != nil {
		return err
	}
	if err := d.cli(ctx, "policy", "validate", polFile); err != nil {
		return err
	}
	if err := d.cli(ctx, "policy", "publish", polFile, "--repo", repoDir, "--keys", keys); err != nil {
		return err
	}
	d.origin = httptest.NewServer(tufrepo.Handler(repoDir))
	d.cleanups = append(d.cleanups, d.origin.Close)
	d.note("origin serves the repository at %s (as `patchring repo serve` would)", d.origin.URL)
	repo, err := tufrepo.Open(repoDir, "", "")
	if err != nil {
		return err
	}
	root, err := repo.RootJSON()
	if err != nil {
		return err
	}
	rootFile := filepath.Join(d.work, "root.json")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		return err
	}
	d.note("`repo init` also created the fleet CA and published fleet.json: agents need a credential it signed")
	if err := d.startIssuing(ctx, repoDir, keys, rootFile); err != nil {
		return err
	}

	// 2. The vendor's apt repository with acme-tool 1.0 and the library
	// it pins.
	d.step("vendor: a signed apt repository on 127.0.0.1 carrying acme-tool 1.0 and libacme 1.0 (acme-tool pins libacme (= 1.0))")
	signer, err := apttest.NewSigner()
	if err != nil {
		return err
	}
	d.cleanups = append(d.cleanups, func() { signer.Close() })
	d.aptKeyring = signer.Keyring
	d.aptRepo, err = apttest.StartRepo(apttest.RepoConfig{Origin: "Acme", Suite: "stable", Signer: signer, ByHash: true})
	if err != nil {
		return err
	}
	d.cleanups = append(d.cleanups, func() { d.aptRepo.Close() })
	debs := filepath.Join(d.work, "debs")
	os.MkdirAll(debs, 0o755)
	lib10, err := apttest.BuildDeb(debs, libAcme("1.0"))
	if err != nil {
		return err
	}
	deb10, err := apttest.BuildDeb(debs, acmeTool("1.0"))
	if err != nil {
		return err
	}
	if _, err := d.aptRepo.Add(lib10, deb10); err != nil {
		return err
	}
	d.note("%s", d.aptRepo.SourcesLine())

	// 3. The fleet.
	d.step("fleet: enroll %d patchringd agents in two sites with the tokens, each with its own package root holding acme-tool 1.0 and libacme 1.0", len(fleet))
	d.note("each agent's config names no site and no tags: `patchringd enroll @TOKEN` creates its node key, gets a credential from the issuing service, checks it in fleet.json and writes the origin, trusted root and site")
	for _, spec := range fleet {
		a, err := d.startAgent(ctx, spec, []string{lib10, deb10}, rootFile)
		if err != nil {
			return err
		}
		d.agents = append(d.agents, a)
		extra := ""
		if spec.broken {
			extra = " (its acme-tool service is broken: the health check after an install will fail)"
		}
		d.note("%-15s site %-7s tags %-6s pid %d%s", spec.name, spec.site, spec.tagList(), a.cmd.Process.Pid, extra)
	}
	for _, a := range d.agents {
		if err := d.waitPolicy(ctx, a); err != nil {
			return err
		}
	}
	d.step("every agent verified the signed policy; hq-lab-1's view of it:")
	if err := d.cli(ctx, "--socket", d.agents[0].sock, "policy", "show"); err != nil {
		return err
	}
	if err := d.intruder(ctx, rootFile); err != nil {
		return err
	}
	if err := d.startShip(ctx, []string{lib10, deb10}, rootFile, repoDir, keys); err != nil { // demo_ship_linux.go
		return err
	}
	if err := d.advisories(ctx, repoDir, keys); err != nil { // demo_vulns.go
		return err
	}
	if err := d.selfUpdate(ctx, repoDir, keys, builds); err != nil { // demo_selfupdate.go
		return err
	}

	// 4. The patch.
	d.step("vendor: release libacme 1.1 and acme-tool 1.1, which pins libacme (= 1.1) and whose postinst asks for a reboot: each agent installs both in one transaction")
	lib11, err := apttest.BuildDeb(debs, libAcme("1.1"))
	if err != nil {
		return err
	}
	deb11, err := apttest.BuildDeb(debs, acmeTool("1.1"))
	if err != nil {
		return err
	}
	if _, err := d.aptRepo.Add(lib11, deb11); err != nil {
		return err
	}
	if err := d.releaseRPM(); err != nil { // demo_rpm.go: the same release as .rpm in the dnf repository
		return err
	}
	released := time.Now()
	d.aptMark = len(d.aptRepo.Requests()) // demo_apt.go counts the vendor's copies from here
	d.note("rings: lab installs at once, pilot after a 12s deferral, broad once its site's pilot succeeded (a gate fed by gossip);")
	d.note("but 1.1 fixes %s (KEV): the policy's urgent rule approves it without pilot's deferral", demoCVE)
	if err := d.shipRelease(ctx, repoDir, keys); err != nil {
		return err
	}

	if err := d.follow(ctx, released); err != nil {
		return err
	}

	// 4b. What the sites saw over gossip, and what peers saved.
	if err := d.showSites(ctx); err != nil {
		return err
	}

	// 5. The story of the broken node.
	broken := d.agentNamed("branch-desk-2")
	d.step("branch-desk-2's health check failed after the install: the engine rolled both packages back in one apt run")
	if err := d.cli(ctx, "--socket", broken.sock, "history"); err != nil {
		return err
	}
	if err := d.cli(ctx, "--socket", broken.sock, "updates"); err != nil {
		return err
	}
	ok := d.agentNamed("hq-pilot-1")
	d.step("hq-pilot-1 installed it cleanly:")
	if err := d.cli(ctx, "--socket", ok.sock, "history"); err != nil {
		return err
	}

	// 6. The reboot, on the node that installed last (its restart is the
	// furthest away).
	lab := d.lastInstalled(ctx)
	d.step("acme-tool 1.1 asked for a reboot: the user on %s defers it once from the tray; then the agent restarts the machine", lab.name)
	if err := d.cli(ctx, "--socket", lab.sock, "reboot", "status"); err != nil {
		return err
	}
	user, err := d.deferFromTray(ctx, lab) // tray.go
	if err != nil {
		return err
	}
	d.note("a second deferral is beyond the policy's limit (max_deferrals: 1): the agent refuses it, whoever asks")
	if err := d.cli(ctx, "--socket", lab.sock, "reboot", "defer", "10s"); err == nil {
		return errors.New("the agent accepted a deferral beyond the policy's limit")
	}
	if err := user.waitReboot(ctx); err != nil {
		return err
	}
	if err := d.exposure(ctx); err != nil { // demo_vulns.go
		return err
	}

	if err := d.showApt(ctx); err != nil { // demo_apt.go
		return err
	}
	if err := d.shipScene(ctx); err != nil {
		return err
	}
	if err := d.showConsole(ctx); err != nil {
		return err
	}
	if err := d.restartScene(ctx); err != nil { // demo_restart.go
		return err
	}
	if err := d.waitRPMAgents(ctx); err != nil { // demo_rpm.go
		return err
	}
	d.step("summary")
	d.printTable(ctx)
	fmt.Println()
	d.note("every agent acted only on the policy it verified against the fleet's root of trust;")
	d.note("every payload was verified against the SHA-256 apt itself verified from the repository's signed indices;")
	d.note("branch-desk-2 is back on acme-tool 1.0 and libacme 1.0 (one transaction, nothing removed) and will not retry 1.1 until the admin publishes a new policy.")
	return nil
}

// libAcme is the library acme-tool pins to its own version.
func libAcme(version string) apttest.Package {
	return apttest.Package{
		Name: "libacme", Version: version,
		Description: "Acme's shared library (patchring demo package)",
		Files:       []apttest.File{{Path: "/usr/share/libacme/VERSION", Body: []byte(version + "\n")}},
	}
}

func acmeTool(version string) apttest.Package {
	p := apttest.Package{
		Name: "acme-tool", Version: version,
		Depends:     []string{"libacme (= " + version + ")"},
		Description: "Acme's endpoint tool (patchring demo package)",
		Files: []apttest.File{
			{Path: "/usr/share/acme-tool/VERSION", Body: []byte(version + "\n")},
			{Path: "/etc/acme-tool/acme.conf", Body: []byte("# acme-tool configuration\nlevel = 1\n"), Conffile: true},
		},
	}
	if version != "1.0" {
		p.Postinst = "#!/bin/sh\nmkdir -p \"$DPKG_ROOT/var/run\"\necho acme-tool >> \"$DPKG_ROOT/var/run/reboot-required.pkgs\"\ntouch \"$DPKG_ROOT/var/run/reboot-required\"\n"
	}
	return p
}

func (d *demo) agentNamed(name string) *agent {
	for _, a := range d.agents {
		if a.name == name {
			return a
		}
	}
	panic("no agent " + name)
}

func (d *demo) startAgent(ctx context.Context, spec agentSpec, debs []string, rootFile string) (*agent, error) {
	if spec.rpm {
		return d.startRPMAgent(ctx, spec, rootFile) // demo_rpm.go
	}
	a := &agent{agentSpec: spec, dir: filepath.Join(d.work, spec.name)}
	// On loopback every agent needs its own ports; in a namespace of its
	// own an agent has the usual ones.
	gossipAddr, aptProxyAddr, p2pListen := spec.ip+":7946", "127.0.0.1:3142", "/ip4/"+spec.ip+"/tcp/4001"
	if spec.netns == "" {
		var err error
		if gossipAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		if aptProxyAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		p2pListen = "/ip4/127.0.0.1/tcp/0"
	}
	if d.seeds[spec.site] == "" {
		// The first agent of a site is the others' seed.
		d.seeds[spec.site] = gossipAddr
	}
	a.sock = filepath.Join(a.dir, "patchringd.sock")
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, err
	}
	sb, err := apttest.NewSandbox(apttest.SandboxOptions{TempDir: a.dir, ProxyAllowed: true})
	if err != nil {
		return nil, err
	}
	a.sb = sb
	d.cleanups = append(d.cleanups, func() { sb.Close() })
	if err := sb.AddRepo("acme", d.aptRepo); err != nil {
		return nil, err
	}
	if len(debs) > 0 {
		if err := sb.DpkgInstall(ctx, debs...); err != nil {
			return nil, err
		}
	}
	if spec.broken {
		if err := os.WriteFile(sb.Path("etc/acme-tool/broken"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	rebootScript := filepath.Join(a.dir, "reboot.sh")
	os.WriteFile(rebootScript, []byte("#!/bin/sh\necho \"$(date +%T) $1\" >> \""+filepath.Join(a.dir, "rebooted")+"\"\n"), 0o755)
	// An enrolled agent's config names no site, tags, origin or root:
	// `patchringd enroll` writes the origin, the root and the site from
	// the token, and site and tags come from the credential. The intruder
	// has only what a stolen gossip key and a copied config give.
	identity, source := "", ""
	if spec.noCredential {
		identity = fmt.Sprintf("site: %s\ntags: [%s]\n", spec.site, strings.Join(spec.tags, ", "))
		source = fmt.Sprintf("  origin: %s\n  root_file: %s\n", d.origin.URL, rootFile)
	}
	// apt-get update every 4 s is enough to see a release within seconds;
	// the ship's agents are watched only at the end (demo_ship_linux.go)
	// and poll slower still, leaving the CPU to the scenes watched live.
	aptCheck, aptRefresh := "2s", "4s"
	if spec.netns != "" {
		aptCheck, aptRefresh = "5s", "10s"
	}
	cfg := fmt.Sprintf(`state_dir: %s
socket: %s
hostname: %s
%slog_level: warn
apt:
  enabled: true
  root: %s
  apt_config: %s
  check_interval: %s
  refresh_interval: %s
  proxy:
    enabled: true
    listen: %s
policy:
%s  refresh_interval: 2s
reboot:
  command: [%s, "{message}"]
report:
  interval: 3s
gossip:
  enabled: true
  listen: %s
  seeds: [%s]
  key_file: %s
  label: patchring-demo
p2p:
  enabled: true
  listen: %s
`, a.dir, a.sock, spec.name, identity, sb.Root, sb.AptConfig, aptCheck, aptRefresh, aptProxyAddr, source, rebootScript,
		gossipAddr, d.seeds[spec.site], d.gossipKeyFile, p2pListen)
	cfgFile := filepath.Join(a.dir, "patchringd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if !spec.noCredential {
		if err := d.enroll(ctx, spec, cfgFile); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(a.dir, "patchringd.log"))
	if err != nil {
		return nil, err
	}
	a.cmd = agentCommand(spec, filepath.Join(d.bin, "patchringd"), "run", "--config", cfgFile)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	d.cleanups = append(d.cleanups, func() { stopAgent(a) })
	a.client = &client.Client{Socket: a.sock}
	return a, nil
}

// freeAddr returns a 127.0.0.1 address whose port is free for TCP and UDP
// (memberlist uses both). The agent binds it seconds later, so the port is
// picked below the kernel's ephemeral range: a port from that range can be
// handed in the meantime to any process's outgoing connection (in make
// test, a parallel test's), and the agent would fail to start.
func freeAddr() (string, error) {
	lo := ephemeralLow()
	for range 50 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lowPortFloor+mrand.IntN(lo-lowPortFloor)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no port free for TCP and UDP on 127.0.0.1 between %d and %d", lowPortFloor, lo)
}

// lowPortFloor is the lowest port freeAddr picks.
const lowPortFloor = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range), 32768 when it cannot be read or leaves too little
// room below it.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fallback
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < lowPortFloor+1000 {
		return fallback
	}
	return lo
}

// agentCommand is how the demo runs an agent: in its network namespace
// when it has one (ip netns exec replaces itself with the agent, so the
// pid is the agent's).
func agentCommand(spec agentSpec, bin string, args ...string) *exec.Cmd {
	if spec.netns == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", spec.netns, bin}, args...)...)
}

func stopAgent(a *agent) {
	if a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// poll calls f every interval until it reports done, ctx ends or the
// agent exits.
func (d *demo) poll(ctx context.Context, a *agent, what string, f func() (bool, error)) error {
	for {
		ok, err := f()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%s: %s: %v (%w)", a.name, what, err, ctx.Err())
			}
			return fmt.Errorf("%s: %s: %w", a.name, what, ctx.Err())
		case err := <-a.done:
			log := filepath.Join(a.dir, "patchringd.log")
			return fmt.Errorf("%s exited while waiting for %s: %v (log: %s); its last lines:\n    %s", a.name, what, err, log,
				strings.ReplaceAll(filetail.Lines(log, 15), "\n", "\n    "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *demo) waitPolicy(ctx context.Context, a *agent) error {
	return d.poll(ctx, a, "a verified policy", func() (bool, error) {
		p, err := a.client.Policy(ctx)
		return err == nil && p.Version != "", err
	})
}

type nodeView struct {
	ring, version, lib, last, reboot string
	txs                              []apitypes.Transaction
	settled                          bool
}

func (d *demo) view(ctx context.Context, a *agent) nodeView {
	var v nodeView
	if p, err := a.client.Policy(ctx); err == nil {
		v.ring = p.Ring
	}
	v.version = "?"
	if ver, err := a.version(ctx, "acme-tool"); err == nil {
		v.version = ver
	}
	v.lib = "?"
	if ver, err := a.version(ctx, "libacme"); err == nil {
		v.lib = ver
	}
	if txs, err := a.client.History(ctx, 0); err == nil {
		// The agent's own package has its own scene (demo_selfupdate.go).
		for _, t := range txs {
			if !selfTx(t, selfOld) && !selfTx(t, selfNew) {
				v.txs = append(v.txs, t)
			}
		}
		txs = v.txs
		if len(txs) > 0 {
			t := txs[0]
			v.last = fmt.Sprintf("#%d %s %s", t.ID, t.Kind, orOpen(t.Outcome))
			v.settled = t.Outcome != ""
		}
	}
	if u, err := a.client.Updates(ctx); err == nil {
		for _, up := range u.Updates {
			if up.Package == "acme-tool" && v.last == "" {
				v.last = up.Action + ": " + up.Reason
			}
		}
	}
	if rs, err := a.client.RebootStatus(ctx); err == nil && rs.Required {
		v.reboot = rs.State
	}
	return v
}

func orOpen(s string) string {
	if s == "" {
		return "in progress"
	}
	return s
}

func (d *demo) printTable(ctx context.Context) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "          NODE\tSITE\tRING\tACME-TOOL\tLIBACME\tLAST TRANSACTION / DECISION\tREBOOT")
	for _, a := range append(slices.Clone(d.agents), d.ship...) {
		v := d.view(ctx, a)
		last := v.last
		if len(last) > 90 {
			last = last[:87] + "..."
		}
		fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.name, a.site, v.ring, v.version, v.lib, last, v.reboot)
	}
	tw.Flush()
}

// follow prints the fleet whenever something changes, until every agent
// has ended a transaction for acme-tool 1.1.
func (d *demo) follow(ctx context.Context, released time.Time) error {
	last := ""
	for {
		var b strings.Builder
		done := 0
		var lines []string
		for _, a := range d.agents {
			v := d.view(ctx, a)
			state := v.version + "/" + v.lib
			if len(v.txs) > 0 {
				state += " " + v.txs[0].Outcome
				if v.settled && !a.rpm {
					done++
				}
			}
			if a.rpm {
				done++ // dnf is slower: awaited before the summary (waitRPMAgents)
			}
			lines = append(lines, a.name+":"+state)
		}
		sort.Strings(lines)
		fmt.Fprint(&b, strings.Join(lines, " "))
		if b.String() != last {
			last = b.String()
			d.step("fleet %.0fs after the release:", time.Since(released).Seconds())
			d.printTable(ctx)
		}
		if done == len(d.agents) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the update did not reach every ring: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		for _, a := range d.agents {
			select {
			case err := <-a.done:
				return fmt.Errorf("%s exited: %v (log: %s)", a.name, err, filepath.Join(a.dir, "patchringd.log"))
			default:
			}
		}
	}
}

// lastInstalled returns the agent whose install of acme-tool ended last.
func (d *demo) lastInstalled(ctx context.Context) *agent {
	var best *agent
	var bestAt time.Time
	for _, a := range d.agents {
		if a.rpm {
			continue // its acme-tool 1.1 asks for no reboot
		}
		txs, err := a.client.History(ctx, 1)
		if err != nil || len(txs) == 0 || txs[0].Outcome != "installed" {
			continue
		}
		if txs[0].Ended.After(bestAt) {
			best, bestAt = a, txs[0].Ended
		}
	}
	if best == nil {
		return d.agents[0]
	}
	return best
}

func (d *demo) waitReboot(ctx context.Context, a *agent) error {
	marker := filepath.Join(a.dir, "rebooted")
	start := time.Now()
	err := d.poll(ctx, a, "the enforced reboot", func() (bool, error) {
		_, err := os.Stat(marker)
		return err == nil, nil
	})
	if err != nil {
		return err
	}
	data, _ := os.ReadFile(marker)
	d.note("%.0fs later the deferral was used up: patchringd ran the reboot command (simulated here): %s", time.Since(start).Seconds(), strings.TrimSpace(string(data)))
	return nil
}

// showSites prints each site's fleet view and rollout as one member sees
// it over gossip, and the payload bytes that came from peers instead of
// the vendor's repository.
func (d *demo) showSites(ctx context.Context) error {
	for _, siteName := range []string{"hq", "branch"} {
		var first *agent
		for _, a := range d.agents {
			if a.site == siteName {
				first = a
				break
			}
		}
		d.step("site %s as %s sees it over gossip", siteName, first.name)
		// Gossip converges within a few seconds; wait for every member.
		want := 0
		for _, a := range d.agents {
			if a.site == siteName {
				want++
			}
		}
		if err := d.poll(ctx, first, "the site's members", func() (bool, error) {
			f, err := first.client.Fleet(ctx)
			if err != nil {
				return false, err
			}
			n := 0
			for _, m := range f.Members {
				if m.Liveness == "alive" || m.Local {
					n++
				}
			}
			return n >= want, nil
		}); err != nil {
			return err
		}
		time.Sleep(2500 * time.Millisecond) // one publish round so the counts are fresh
		if err := d.cli(ctx, "--socket", first.sock, "fleet"); err != nil {
			return err
		}
		if err := d.cli(ctx, "--socket", first.sock, "fleet", "rollout"); err != nil {
			return err
		}
	}
	var fromOrigin, fromPeers int64
	for _, a := range d.agents {
		p, err := a.client.Peers(ctx)
		if err != nil {
			return fmt.Errorf("%s: peers: %w", a.name, err)
		}
		fromOrigin += p.FromOrigin
		fromPeers += p.FromPeers
	}
	d.step("payload traffic: %d agents installed acme-tool and libacme 1.1 (and kept both 1.0 payloads for rollback)", len(d.agents))
	d.note("bytes from the vendor repository (WAN): %d; bytes from LAN peers: %d", fromOrigin, fromPeers)
	if total := fromOrigin + fromPeers; total > 0 {
		d.note("bandwidth optimization: %.0f%% of payload bytes came from peers", 100*float64(fromPeers)/float64(total))
	}
	return d.cli(ctx, "--socket", d.agentNamed("branch-desk-1").sock, "peers")
}

// intruder starts an agent at site hq with the stolen gossip key but no
// credential, shows that hq refuses it (and why), and stops it.
func (d *demo) intruder(ctx context.Context, rootFile string) error {
	d.step("an intruder: an agent with the site's stolen gossip key, but no credential from the fleet CA, tries to join hq")
	a, err := d.startAgent(ctx, agentSpec{name: "intruder", site: "hq", tags: []string{"lab"}, noCredential: true}, nil, rootFile)
	if err != nil {
		return err
	}
	defer stopAgent(a)
	lab := d.agentNamed("hq-lab-1")
	if err := d.poll(ctx, lab, "hq refusing the intruder", func() (bool, error) {
		f, err := lab.client.Fleet(ctx)
		if err != nil {
			return false, err
		}
		for _, m := range f.Members {
			if m.Hostname == "intruder" {
				return false, fmt.Errorf("hq-lab-1 admitted the intruder")
			}
		}
		return len(f.Refused) > 0, nil
	}); err != nil {
		return err
	}
	if err := d.cli(ctx, "--socket", lab.sock, "fleet"); err != nil {
		return err
	}
	d.note("the intruder is not a member: no payloads, no metadata, no vote in hq's gates, no reboot-lease slot")
	d.note("its own agent says why:")
	return d.cli(ctx, "--socket", a.sock, "status")
}

// startIssuing delegates an issuing key (patchring ca issuer create),
// starts the issuing service with it (patchring ca serve) and creates one
// enrollment token for each site and tag set of the fleet (patchring
// enroll-token create), with as many uses as that group has agents.
func (d *demo) startIssuing(ctx context.Context, repoDir, keys, rootFile string) error {
	d.step("admin: delegate an issuing key to an issuing service, start it, and create enrollment tokens")
	issuerDir, data := filepath.Join(d.work, "issuer-keys"), filepath.Join(d.work, "ca-data")
	if err := d.cli(ctx, "ca", "issuer", "create", "--repo", repoDir, "--keys", keys, "--name", "demo-issuer", "--sites", "hq,branch,ship", "--valid", "1d", "--out", issuerDir); err != nil {
		return err
	}
	keyFiles, err := filepath.Glob(filepath.Join(issuerDir, tufrepo.RoleFleetIssuer+"-*.json"))
	if err != nil || len(keyFiles) != 1 {
		return fmt.Errorf("issuer create wrote %d key files in %s, want 1 (%v)", len(keyFiles), issuerDir, err)
	}
	logFile := filepath.Join(d.work, "ca-serve.log")
	logf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	args := []string{"ca", "serve", "--data", data, "--issuer-key", keyFiles[0], "--repo", repoDir, "--listen", "127.0.0.1:0", "--validity", "1d"}
	fmt.Printf("\n          $ patchring %s &\n", strings.Join(args, " "))
	cmd := exec.Command(filepath.Join(d.bin, "patchring"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start the issuing service: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	d.cleanups = append(d.cleanups, func() {
		if cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	listening := regexp.MustCompile(`Issuing service on (http://127\.0\.0\.1:\d+)/`)
	for d.service == "" {
		out, _ := os.ReadFile(logFile)
		if m := listening.FindSubmatch(out); m != nil {
			d.service = string(m[1])
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the issuing service did not start: %w (log: %s)", ctx.Err(), logFile)
		case err := <-done:
			return fmt.Errorf("the issuing service exited: %v\n%s", err, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.note("issuing service pid %d on %s; it holds only the issuing key, never the CA key (behind TLS in production)", cmd.Process.Pid, d.service)

	d.tokens = map[string]string{}
	tokenDir := filepath.Join(d.work, "tokens")
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return err
	}
	uses := map[string]int{}
	var groups []agentSpec
	for _, spec := range append(slices.Clone(fleet), shipFleet...) {
		g := tokenGroup(spec)
		if uses[g] == 0 {
			groups = append(groups, spec)
		}
		uses[g]++
	}
	for _, spec := range groups {
		g := tokenGroup(spec)
		file := filepath.Join(tokenDir, strings.NewReplacer("/", "-", ",", "-").Replace(g)+".token")
		args := []string{"enroll-token", "create", "--data", data, "--site", spec.site, "--uses", fmt.Sprint(uses[g]), "--expires", "1h",
			"--origin", d.origin.URL, "--service", d.service, "--root", rootFile, "--out", file}
		if len(spec.tags) > 0 {
			args = append(args, "--tags", strings.Join(spec.tags, ","))
		}
		if err := d.cli(ctx, args...); err != nil {
			return err
		}
		d.tokens[g] = file
	}
	return d.cli(ctx, "enroll-token", "list", "--data", data)
}

// tokenGroup names the token an agent enrolls with: its site and tags.
func tokenGroup(spec agentSpec) string {
	if len(spec.tags) == 0 {
		return spec.site
	}
	return spec.site + "/" + strings.Join(spec.tags, ",")
}

// enroll runs the real `patchringd enroll @TOKENFILE` for an agent whose
// config file is written, and prints what it says.
func (d *demo) enroll(ctx context.Context, spec agentSpec, cfgFile string) error {
	tok := d.tokens[tokenGroup(spec)]
	if tok == "" {
		return fmt.Errorf("no enrollment token for %s", tokenGroup(spec))
	}
	args := []string{"enroll", "--config", cfgFile, "@" + tok}
	fmt.Printf("\n          $ patchringd %s\n", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "patchringd"), args...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("          " + line)
	}
	if err != nil {
		return fmt.Errorf("%s: patchringd enroll: %w", spec.name, err)
	}
	return nil
}
