package apt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
)

const failFlag = "/etc/acme-tool/fail-postinst"

func acmePackage(name, version string) apttest.Package {
	return apttest.Package{
		Name:    name,
		Version: version,
		Files: []apttest.File{
			{Path: "/usr/bin/" + name, Body: []byte("#!/bin/sh\necho " + name + " " + version + "\n"), Mode: 0o755},
			{Path: "/etc/" + name + "/" + name + ".conf", Body: []byte("# " + version + "\n"), Conffile: true},
		},
		Postinst: apttest.FailingPostinst(failFlag),
	}
}

// env is a sandbox with a repository and a backend driving it.
type env struct {
	sb   *apttest.Sandbox
	repo *apttest.Repo
	b    *apt.Backend
	dir  string // where test debs are built
	debs map[string]string
}

func newEnv(t *testing.T, repoCfg apttest.RepoConfig, pkgs ...apttest.Package) *env {
	t.Helper()
	apttest.GuardHostDB(t)
	e := &env{dir: t.TempDir(), debs: map[string]string{}}
	e.repo = apttest.MustStartRepo(t, repoCfg)
	e.sb = apttest.MustSandbox(t, apttest.SandboxOptions{})
	e.sb.MustAddRepo(t, "test", e.repo)
	for _, p := range pkgs {
		e.add(t, e.repo, p)
	}
	b, err := apt.New(context.Background(), apt.Options{AptConfig: e.sb.AptConfig})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	return e
}

func (e *env) add(t *testing.T, r *apttest.Repo, p apttest.Package) string {
	t.Helper()
	deb := apttest.MustBuildDeb(t, e.dir, p)
	r.MustAdd(t, deb)
	e.debs[p.Name+"="+p.Version] = deb
	return deb
}

func (e *env) refresh(t *testing.T) {
	t.Helper()
	if err := e.b.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *env) install(t *testing.T, pv apt.PkgVersion, opts apt.InstallOptions) {
	t.Helper()
	if err := e.b.Install(context.Background(), []apt.PkgVersion{pv}, opts); err != nil {
		t.Fatal(err)
	}
	e.wantVersion(t, pv.Name, pv.Version)
}

func (e *env) wantVersion(t *testing.T, pkg, want string) {
	t.Helper()
	got, err := e.b.InstalledVersion(context.Background(), pkg)
	if err != nil || got != want {
		t.Fatalf("InstalledVersion(%s) = %q, %v; want %q", pkg, got, err, want)
	}
}

func TestNewReadsSandboxPaths(t *testing.T) {
	e := newEnv(t, apttest.RepoConfig{})
	want := apt.Paths{
		Root:     e.sb.Root,
		AdminDir: e.sb.AdminDir,
		Status:   filepath.Join(e.sb.AdminDir, "status"),
		Archives: e.sb.Path("var/cache/apt/archives"),
		Arch:     "amd64",
	}
	if got := e.b.Paths(); got != want {
		t.Errorf("Paths = %+v\nwant %+v", got, want)
	}
}

func TestNewOnHostIsReadOnly(t *testing.T) {
	apttest.GuardHostDB(t)
	b, err := apt.New(context.Background(), apt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Paths(); p.Root != "/" || p.AdminDir != "/var/lib/dpkg" || p.Archives != "/var/cache/apt/archives" {
		t.Errorf("host paths = %+v", p)
	}
	v, err := b.InstalledVersion(context.Background(), "dpkg")
	if err != nil || v == "" {
		t.Errorf("host dpkg version = %q, %v", v, err)
	}
	if v, err := b.InstalledVersion(context.Background(), "patchring-no-such-package"); v != "" || err != nil {
		t.Errorf("missing package = %q, %v", v, err)
	}
}

// TestStatusOnHostMatchesDpkgQuery: the backend reads dpkg's database
// in-process; what it reports for every package on the host is what
// dpkg-query -W prints for it, and Installed lists exactly the packages
// dpkg-query shows installed or half-way there.
func TestStatusOnHostMatchesDpkgQuery(t *testing.T) {
	apttest.GuardHostDB(t)
	ctx := context.Background()
	b, err := apt.New(ctx, apt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "dpkg-query", "-W", "-f",
		"${binary:Package}\t${Architecture}\t${Version}\t${db:Status-Want}\t${db:Status-Status}\t${db:Status-Eflag}\n")
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	installed, err := b.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 50 {
		t.Fatalf("dpkg-query listed only %d packages", len(lines))
	}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			t.Fatalf("dpkg-query line %q", line)
		}
		name, _, _ := strings.Cut(f[0], ":")
		got, err := b.Status(ctx, name+":"+f[1])
		if err != nil {
			t.Errorf("Status(%s:%s): %v", name, f[1], err)
			continue
		}
		if w := (apt.PackageStatus{Name: name, Arch: f[1], Version: f[2], Want: f[3], State: f[4], Eflag: f[5]}); got != w {
			t.Errorf("Status(%s:%s) = %+v, dpkg-query says %+v", name, f[1], got, w)
		}
		if f[4] != "not-installed" && f[4] != "config-files" {
			k := name
			if f[1] != "all" && f[1] != b.Paths().Arch {
				k += ":" + f[1]
			}
			want[k] = f[2]
		}
	}
	if !reflect.DeepEqual(installed, want) {
		t.Errorf("Installed differs from dpkg-query: %d packages, want %d", len(installed), len(want))
	}
	// Files asks one dpkg-query for many packages; one that is not
	// installed has no files and is no error.
	files, err := b.Files(ctx, "dpkg", "patchring-no-such-package", "coreutils")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/usr/bin/dpkg", "/bin/ls"} {
		if !slices.Contains(files, f) {
			t.Errorf("Files(dpkg, coreutils) lacks %s (%d files)", f, len(files))
		}
	}
	if _, err := b.Files(ctx, "dpkg", "bad name"); err == nil {
		t.Error("Files accepted an invalid package name")
	}
	if st, err := b.Status(ctx, "dpkg:i386"); err != nil || st.State != "not-installed" {
		t.Errorf("Status(dpkg:i386) = %+v, %v; want not-installed, as dpkg-query finds no such package", st, err)
	}
}

// TestUpgradableOnHostMatchesAptList runs the read-only discovery on the
// host and compares it with `apt list --upgradable` run at the same time.
// The host may have nothing to upgrade; the comparison holds either way.
func TestUpgradableOnHostMatchesAptList(t *testing.T) {
	apttest.GuardHostDB(t)
	ctx := context.Background()
	b, err := apt.New(ctx, apt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cands, err := b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "apt", "list", "--upgradable")
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, line := range strings.Split(string(out), "\n") {
		// name/suite version arch [upgradable from: installed]
		f := strings.Fields(line)
		if len(f) >= 3 && strings.Contains(line, "[upgradable from:") {
			name, _, _ := strings.Cut(f[0], "/")
			want = append(want, name+" "+f[1]+" "+f[2])
		}
	}
	for _, c := range cands {
		got = append(got, c.Package+" "+c.Version+" "+c.Arch)
		if c.URI == "" || c.Size <= 0 || len(c.SHA256) != 64 || len(c.Sources) == 0 {
			t.Errorf("incomplete candidate %+v", c)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Upgradable differs from apt list --upgradable:\ngot  %v\nwant %v", got, want)
	}
	t.Logf("%d upgradable packages on the host", len(got))
}

// TestUpgradeFromPlacedPayloadAndRollback is the engine's path: discover
// 1.1 with its payload's URI, size and SHA256; fetch and verify it; stop
// the repository; place it; install without network; roll back to 1.0.
func TestUpgradeFromPlacedPayloadAndRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{}, acmePackage("acme-tool", "1.0"))
	e.refresh(t)
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{})
	if ups, err := e.b.Upgradable(ctx); err != nil || len(ups) != 0 {
		t.Fatalf("Upgradable before 1.1 = %+v, %v", ups, err)
	}

	e.add(t, e.repo, acmePackage("acme-tool", "1.1"))
	e.refresh(t)
	ups, err := e.b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 {
		t.Fatalf("Upgradable = %+v, want acme-tool 1.1", ups)
	}
	c := ups[0]
	pool, _ := e.repo.Entry("acme-tool", "1.1", "amd64")
	want := apt.Candidate{
		Package: "acme-tool", Arch: "amd64", Installed: "1.0", Version: "1.1",
		Origin: "patchring-test", Label: "patchring-test", Archive: "stable", Codename: "stable", Component: "main", Site: "127.0.0.1",
		URI: e.repo.URL() + pool.Filename, Filename: "acme-tool_1.1_amd64.deb", Size: pool.Size, SHA256: pool.SHA256, Hash: "SHA256:" + pool.SHA256,
	}
	if len(c.Sources) != 1 || c.Sources[0].Priority != 500 {
		t.Errorf("sources = %+v", c.Sources)
	}
	c.Sources = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("candidate\n got  %+v\n want %+v", c, want)
	}

	// The engine's fetch: download from the URI apt gave and verify the
	// size and hash apt gave.
	payload := filepath.Join(t.TempDir(), "payload")
	fetchVerified(t, c, payload)

	if err := e.repo.Stop(); err != nil {
		t.Fatal(err)
	}
	placed, err := e.b.Place(ctx, payload, c.Package, c.Version, c.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if placed != e.sb.Path("var/cache/apt/archives/acme-tool_1.1_amd64.deb") {
		t.Errorf("placed at %s", placed)
	}
	e.install(t, c.PkgVersion(), apt.InstallOptions{NoDownload: true})
	if body, _ := os.ReadFile(e.sb.Path("usr/bin/acme-tool")); !strings.Contains(string(body), "acme-tool 1.1") {
		t.Errorf("installed file: %q", body)
	}

	// Rollback: 1.0 is still in the (local) indices, so apt can describe it
	// with the repository offline.
	prev, err := e.b.Candidate(ctx, "acme-tool", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	pool10, _ := e.repo.Entry("acme-tool", "1.0", "amd64")
	if prev.SHA256 != pool10.SHA256 || prev.Installed != "1.1" || prev.Version != "1.0" {
		t.Errorf("Candidate(1.0) = %+v", prev)
	}
	// apt kept the 1.0 download; remove it to show NoDownload refuses.
	if err := os.Remove(e.b.ArchivePath("acme-tool", "1.0", "amd64")); err != nil {
		t.Fatal(err)
	}
	err = e.b.Install(ctx, []apt.PkgVersion{prev.PkgVersion()}, apt.InstallOptions{NoDownload: true, AllowDowngrades: true})
	if !errors.Is(err, apt.ErrNotPlaced) {
		t.Fatalf("install of unplaced payload: %v, want ErrNotPlaced", err)
	}
	if _, err := e.b.Place(ctx, e.debs["acme-tool=1.0"], "acme-tool", "1.0", "amd64"); err != nil {
		t.Fatal(err)
	}
	// Without AllowDowngrades apt refuses and nothing changes.
	err = e.b.Install(ctx, []apt.PkgVersion{prev.PkgVersion()}, apt.InstallOptions{NoDownload: true})
	var ie *apt.InstallError
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "--allow-downgrades") {
		t.Fatalf("downgrade without AllowDowngrades: %v", err)
	}
	e.wantVersion(t, "acme-tool", "1.1")
	e.install(t, prev.PkgVersion(), apt.InstallOptions{NoDownload: true, AllowDowngrades: true})

	if _, err := e.b.Candidate(ctx, "acme-tool", "0.9"); !errors.Is(err, apt.ErrNotAvailable) {
		t.Errorf("Candidate(0.9): %v, want ErrNotAvailable", err)
	}
	if _, err := e.b.Candidate(ctx, "no-such-package", "1"); !errors.Is(err, apt.ErrNotAvailable) {
		t.Errorf("Candidate(no-such-package): %v, want ErrNotAvailable", err)
	}
	if audit, err := e.b.Audit(ctx); err != nil || len(audit) != 0 {
		t.Errorf("Audit = %v, %v", audit, err)
	}
}

func fetchVerified(t *testing.T, c apt.Candidate, dst string) {
	t.Helper()
	resp, err := http.Get(c.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch %s: %v %s", c.URI, err, resp.Status)
	}
	sum := sha256.Sum256(body)
	if int64(len(body)) != c.Size || hex.EncodeToString(sum[:]) != c.SHA256 {
		t.Fatalf("payload %s: %d bytes sha256 %x, apt says %d %s", c.URI, len(body), sum, c.Size, c.SHA256)
	}
	if err := os.WriteFile(dst, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPlaceEpochArchAll places an arch-independent package with an epoch,
// whose archive name apt spells with %3a, and installs it offline.
func TestPlaceEpochArchAll(t *testing.T) {
	ctx := context.Background()
	p := acmePackage("acme-data", "2:1.0-1")
	p.Arch = "all"
	p.Postinst = ""
	e := newEnv(t, apttest.RepoConfig{}, p)
	e.refresh(t)
	c, err := e.b.Candidate(ctx, "acme-data", "2:1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Filename != "acme-data_2%3a1.0-1_all.deb" || c.Arch != "all" || c.Installed != "" {
		t.Errorf("candidate = %+v", c)
	}
	if err := e.repo.Stop(); err != nil {
		t.Fatal(err)
	}
	placed, err := e.b.Place(ctx, e.debs["acme-data=2:1.0-1"], c.Package, c.Version, c.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(placed) != c.Filename {
		t.Errorf("placed as %s, apt wants %s", filepath.Base(placed), c.Filename)
	}
	if got, ok := e.b.Placed("acme-data", "2:1.0-1", ""); !ok || got != placed {
		t.Errorf("Placed = %s, %v", got, ok)
	}
	e.install(t, c.PkgVersion(), apt.InstallOptions{NoDownload: true})
}

func TestPlaceRejectsWrongPayload(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{})
	deb := apttest.MustBuildDeb(t, e.dir, acmePackage("acme-tool", "1.0"))
	cases := []struct{ name, pkg, version, arch string }{
		{"other package", "evil-tool", "1.0", "amd64"},
		{"other version", "acme-tool", "1.1", "amd64"},
		{"other arch", "acme-tool", "1.0", "i386"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.b.Place(ctx, deb, tc.pkg, tc.version, tc.arch); !errors.Is(err, apt.ErrPayloadMismatch) {
				t.Fatalf("Place: %v, want ErrPayloadMismatch", err)
			}
			if _, ok := e.b.Placed(tc.pkg, tc.version, tc.arch); ok {
				t.Error("payload placed anyway")
			}
		})
	}
	if _, err := e.b.Place(ctx, deb, "acme-tool", "../../../../tmp/evil", "amd64"); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("Place with a path in the version: %v", err)
	}
	if err := e.b.Install(ctx, []apt.PkgVersion{{Name: "-o", Version: "1"}}, apt.InstallOptions{}); err == nil || !strings.Contains(err.Error(), "invalid package name") {
		t.Errorf("Install of an option as a package: %v", err)
	}
	notDeb := filepath.Join(e.dir, "junk.deb")
	if err := os.WriteFile(notDeb, []byte("not a deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *apt.CommandError
	if _, err := e.b.Place(ctx, notDeb, "acme-tool", "1.0", "amd64"); !errors.As(err, &ce) || !strings.Contains(err.Error(), "dpkg-deb") {
		t.Errorf("Place(junk): %v", err)
	}
	// A refused payload leaves nothing behind in apt's archives.
	left, err := filepath.Glob(filepath.Join(e.b.Paths().Archives, "partial", ".patchring-*"))
	if err != nil || len(left) != 0 {
		t.Errorf("refused payloads left %v (%v) in the partial directory", left, err)
	}
}

// TestPostinstFailureAndRecovery: a failing postinst leaves the package
// half-configured; Install returns an *InstallError with dpkg's output,
// Audit lists the package. Recovery, as an operator would do it: remove
// the cause (here the flag file the postinst checks), then
// ConfigurePending (dpkg --configure -a) finishes the configuration.
func TestPostinstFailureAndRecovery(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{}, acmePackage("acme-tool", "1.0"), acmePackage("acme-tool", "1.1"))
	e.refresh(t)
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{})
	if err := os.WriteFile(e.sb.Path(failFlag), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	err := e.b.Install(ctx, []apt.PkgVersion{{Name: "acme-tool", Version: "1.1"}}, apt.InstallOptions{})
	var ie *apt.InstallError
	if !errors.As(err, &ie) {
		t.Fatalf("Install with failing postinst: %v, want *InstallError", err)
	}
	if !slices.Equal(ie.Failed, []string{"acme-tool"}) || !strings.Contains(ie.Output, "post-installation script subprocess returned error exit status 1") {
		t.Errorf("InstallError: failed %q output:\n%s", ie.Failed, ie.Output)
	}
	var ce *apt.CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 100 || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("underlying error: %v", err)
	}
	v, err := e.b.InstalledVersion(ctx, "acme-tool")
	if v != "1.1" || !errors.Is(err, apt.ErrNotConfigured) {
		t.Errorf("InstalledVersion = %q, %v; want 1.1 and ErrNotConfigured", v, err)
	}
	if audit, err := e.b.Audit(ctx); err != nil || !slices.Equal(audit, []string{"acme-tool"}) {
		t.Errorf("Audit = %v, %v", audit, err)
	}

	// Still failing: ConfigurePending reports it.
	if err := e.b.ConfigurePending(ctx); !errors.As(err, &ie) || ie.Op != "configure" || !slices.Equal(ie.Failed, []string{"acme-tool"}) {
		t.Fatalf("ConfigurePending while still failing: %v", err)
	}
	if err := os.Remove(e.sb.Path(failFlag)); err != nil {
		t.Fatal(err)
	}
	if err := e.b.ConfigurePending(ctx); err != nil {
		t.Fatal(err)
	}
	e.wantVersion(t, "acme-tool", "1.1")
	if audit, err := e.b.Audit(ctx); err != nil || len(audit) != 0 {
		t.Errorf("Audit after recovery = %v, %v", audit, err)
	}
}

// TestRollbackFromHalfConfigured: when only the new version's postinst
// fails, installing the previous version with AllowDowngrades replaces the
// half-configured package and leaves a consistent database.
func TestRollbackFromHalfConfigured(t *testing.T) {
	ctx := context.Background()
	good := acmePackage("acme-tool", "1.0")
	good.Postinst = ""
	bad := acmePackage("acme-tool", "1.1")
	bad.Postinst = apttest.FailingPostinst("/etc/acme-tool/fail-1.1")
	e := newEnv(t, apttest.RepoConfig{}, good, bad)
	e.refresh(t)
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{})
	if err := os.WriteFile(e.sb.Path("etc/acme-tool/fail-1.1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ie *apt.InstallError
	if err := e.b.Install(ctx, []apt.PkgVersion{{Name: "acme-tool", Version: "1.1"}}, apt.InstallOptions{}); !errors.As(err, &ie) {
		t.Fatalf("Install 1.1: %v, want *InstallError", err)
	}
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{AllowDowngrades: true, NoDownload: true})
	if audit, err := e.b.Audit(ctx); err != nil || len(audit) != 0 {
		t.Errorf("Audit after rollback = %v, %v", audit, err)
	}
}

// TestLockHeldByAnotherProcess: a real dpkg process holds the locks.
// WaitLock reports its PID and command and times out; Install and
// ConfigurePending report a *LockedError; after release WaitLock returns.
func TestLockHeldByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{}, acmePackage("acme-tool", "1.0"))
	e.refresh(t)
	if h, err := e.b.LockHolder(); err != nil || h != nil {
		t.Fatalf("LockHolder before = %+v, %v", h, err)
	}
	holder := apttest.MustHoldLock(t, e.sb)

	h, err := e.b.LockHolder()
	if err != nil || h == nil || h.PID != holder.PID() || !strings.HasPrefix(h.Command, "dpkg ") ||
		h.Path != filepath.Join(e.sb.AdminDir, "lock-frontend") {
		t.Fatalf("LockHolder = %+v, %v; want dpkg %d", h, err, holder.PID())
	}

	err = e.b.WaitLock(ctx, 300*time.Millisecond)
	var le *apt.LockedError
	if !errors.As(err, &le) || le.PID != holder.PID() || le.Waited < 300*time.Millisecond {
		t.Fatalf("WaitLock: %v, want LockedError for %d after 300ms", err, holder.PID())
	}
	if !strings.Contains(err.Error(), "dpkg") {
		t.Errorf("message does not name the command: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.b.WaitLock(cctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitLock with cancelled ctx: %v", err)
	}

	err = e.b.Install(ctx, []apt.PkgVersion{{Name: "acme-tool", Version: "1.0"}}, apt.InstallOptions{})
	if !errors.As(err, &le) || le.PID != holder.PID() {
		t.Errorf("Install with lock held: %v, want LockedError for %d", err, holder.PID())
	}
	err = e.b.ConfigurePending(ctx)
	if !errors.As(err, &le) || le.PID != holder.PID() {
		t.Errorf("ConfigurePending with lock held: %v, want LockedError for %d", err, holder.PID())
	}

	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.WaitLock(ctx, 30*time.Second); err != nil {
		t.Fatalf("WaitLock after release: %v", err)
	}
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{})
}

// TestSecurityClassificationInSandbox serves one update from a repository
// that looks like Debian's bookworm-security and one from a regular one.
func TestSecurityClassificationInSandbox(t *testing.T) {
	ctx := context.Background()
	plain := func(name, v string) apttest.Package { p := acmePackage(name, v); p.Postinst = ""; return p }
	e := newEnv(t, apttest.RepoConfig{Origin: "Debian", Label: "Debian", Suite: "oldstable", Codename: "bookworm"},
		plain("acme-tool", "1.0"), plain("libacme1", "1.0"), plain("libacme1", "1.1"))
	sec := apttest.MustStartRepo(t, apttest.SecurityRepoConfig())
	e.sb.MustAddRepo(t, "security", sec)
	e.add(t, sec, plain("acme-tool", "1.0+deb12u1"))
	e.refresh(t)
	for _, p := range []string{"acme-tool", "libacme1"} {
		e.install(t, apt.PkgVersion{Name: p, Version: "1.0"}, apt.InstallOptions{})
	}
	ups, err := e.b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 2 {
		t.Fatalf("Upgradable = %+v", ups)
	}
	got := map[string]apt.Candidate{ups[0].Package: ups[0], ups[1].Package: ups[1]}
	a, l := got["acme-tool"], got["libacme1"]
	if !a.Security || a.Version != "1.0+deb12u1" || a.Label != "Debian-Security" || a.Archive != "oldstable-security" || a.Codename != "bookworm-security" || !strings.HasPrefix(a.URI, sec.URL()) {
		t.Errorf("acme-tool = %+v", a)
	}
	if l.Security || l.Version != "1.1" || l.Archive != "oldstable" || !strings.HasPrefix(l.URI, e.repo.URL()) {
		t.Errorf("libacme1 = %+v", l)
	}
}

func TestRefreshFailsWhenRepositoryIsDown(t *testing.T) {
	e := newEnv(t, apttest.RepoConfig{})
	if err := e.repo.Stop(); err != nil {
		t.Fatal(err)
	}
	err := e.b.Refresh(context.Background())
	var ce *apt.CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "apt-get update") || !strings.Contains(ce.Stderr, "127.0.0.1") {
		t.Fatalf("Refresh with repository down: %v", err)
	}
}

func TestRemove(t *testing.T) {
	p := acmePackage("acme-tool", "1.0")
	p.Postinst = ""
	e := newEnv(t, apttest.RepoConfig{}, p)
	e.refresh(t)
	e.install(t, apt.PkgVersion{Name: "acme-tool", Version: "1.0"}, apt.InstallOptions{})
	if err := e.b.Remove(context.Background(), "acme-tool"); err != nil {
		t.Fatal(err)
	}
	e.wantVersion(t, "acme-tool", "")
	st, err := e.b.Status(context.Background(), "acme-tool")
	if err != nil || st.State != "config-files" {
		t.Errorf("Status after remove = %+v, %v", st, err)
	}
}

func TestRebootRequired(t *testing.T) {
	e := newEnv(t, apttest.RepoConfig{})
	if req, pkgs := e.b.RebootRequired(); req || pkgs != nil {
		t.Errorf("RebootRequired on a fresh root = %v %v", req, pkgs)
	}
	if err := os.WriteFile(e.sb.Path("var/run/reboot-required"), []byte("*** System restart required ***\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.sb.Path("var/run/reboot-required.pkgs"), []byte("linux-image-amd64\nlibc6\nlinux-image-amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if req, pkgs := e.b.RebootRequired(); !req || !slices.Equal(pkgs, []string{"linux-image-amd64", "libc6"}) {
		t.Errorf("RebootRequired = %v %v", req, pkgs)
	}
}

func TestFreeSpace(t *testing.T) {
	free, err := apt.FreeSpace(t.TempDir())
	if err != nil || free == 0 {
		t.Errorf("FreeSpace = %d, %v", free, err)
	}
	if _, err := apt.FreeSpace("/nonexistent/patchring"); err == nil {
		t.Error("FreeSpace of a missing path succeeded")
	}
}

// BenchmarkAptInstallBare is the reference for the engine's overhead: one
// bare `apt-get install` of a small package in a sandbox, its payload
// already in apt's archives (as after Place), alternating between two
// versions so every iteration really installs.
func BenchmarkAptInstallBare(b *testing.B) {
	apttest.GuardHostDB(b)
	ctx := context.Background()
	dir := b.TempDir()
	repo := apttest.MustStartRepo(b, apttest.RepoConfig{})
	for _, v := range []string{"1.0", "1.1"} {
		p := acmePackage("acme-tool", v)
		p.Postinst = ""
		repo.MustAdd(b, apttest.MustBuildDeb(b, dir, p))
	}
	sb := apttest.MustSandbox(b, apttest.SandboxOptions{})
	sb.MustAddRepo(b, "test", repo)
	args := func(v string) []string {
		return []string{"install", "-y", "-q", "--allow-downgrades", "--no-install-recommends", "acme-tool=" + v}
	}
	for _, a := range [][]string{{"update", "-q"}, args("1.1"), args("1.0")} {
		if _, err := sb.Run(ctx, "apt-get", a...); err != nil {
			b.Fatal(err)
		}
	}
	versions := []string{"1.1", "1.0"}
	i := 0
	start := time.Now()
	for b.Loop() {
		if _, err := sb.Run(ctx, "apt-get", args(versions[i%2])...); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(i), "apt_install_bare@ms")
}

// BenchmarkBackendInstall is BenchmarkAptInstallBare through Backend.Install
// with NoDownload (the payloads already in apt's archives), to separate
// the backend's own cost from the engine's.
func BenchmarkBackendInstall(b *testing.B) {
	apttest.GuardHostDB(b)
	ctx := context.Background()
	dir := b.TempDir()
	repo := apttest.MustStartRepo(b, apttest.RepoConfig{})
	for _, v := range []string{"1.0", "1.1"} {
		p := acmePackage("acme-tool", v)
		p.Postinst = ""
		repo.MustAdd(b, apttest.MustBuildDeb(b, dir, p))
	}
	sb := apttest.MustSandbox(b, apttest.SandboxOptions{})
	sb.MustAddRepo(b, "test", repo)
	be, err := apt.New(ctx, apt.Options{AptConfig: sb.AptConfig})
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	for _, v := range []string{"1.1", "1.0"} {
		if err := be.Install(ctx, []apt.PkgVersion{{Name: "acme-tool", Version: v}}, apt.InstallOptions{AllowDowngrades: true}); err != nil {
			b.Fatal(err)
		}
	}
	versions := []string{"1.1", "1.0"}
	i := 0
	start := time.Now()
	for b.Loop() {
		pv := apt.PkgVersion{Name: "acme-tool", Version: versions[i%2], Arch: "amd64"}
		if err := be.Install(ctx, []apt.PkgVersion{pv}, apt.InstallOptions{AllowDowngrades: true, NoDownload: true}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(i), "apt_backend_install@ms")
}
