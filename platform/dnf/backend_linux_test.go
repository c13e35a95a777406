package dnf_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/platform/dnf"
	"github.com/patchring/patchring/platform/dnf/dnftest"
)

type fixture struct {
	repo   *dnftest.Repo
	sb     *dnftest.Sandbox
	b      *dnf.Backend
	v1, v2 dnftest.Package
	dir    string
}

func newFixture(t *testing.T, v2 dnftest.Package) *fixture {
	t.Helper()
	if err := dnftest.CheckTools(); err != nil {
		t.Skipf("dnf tools missing: %v", err)
	}
	dnftest.GuardHost(t)
	f := &fixture{dir: t.TempDir()}
	f.v1 = dnftest.Package{Name: "acme", Version: "1.0", Files: []dnftest.File{{Path: "/usr/share/acme/VERSION", Body: []byte("1.0\n")}}}
	if v2.Name == "" {
		v2 = f.v1
		v2.Version, v2.Files = "1.1", []dnftest.File{{Path: "/usr/share/acme/VERSION", Body: []byte("1.1\n")}}
	}
	f.v2 = v2
	f.repo = dnftest.MustStartRepo(t, dnftest.RepoConfig{Signer: dnftest.MustSigner(t)})
	f.repo.MustAdd(t, dnftest.MustBuildRPM(t, f.dir, f.v1), dnftest.MustBuildRPM(t, f.dir, f.v2))
	f.sb = dnftest.MustSandbox(t, dnftest.SandboxOptions{})
	f.sb.MustAddRepo(t, "patchring-test", f.repo, dnftest.RepoOptions{})
	b, err := dnf.New(dnf.Options{Root: f.sb.Root, Args: f.sb.DNFArgs()[2:], Env: f.sb.Env()})
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func fileSHA(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestBackendUpgradeFromVerifiedPayloads(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t, dnftest.Package{})
	if err := f.repo.SetAdvisories(ctx, dnftest.Advisory{ID: "PRT-2026-0001", Type: "security", Severity: "Critical",
		Title: "acme: fix", CVEs: []string{"CVE-2026-1234"}, Packages: []dnftest.Package{f.v2}}); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Apply(ctx, []string{f.v1.NEVRA()}, nil, false); err != nil {
		t.Fatalf("install 1.0 from the repository: %v", err)
	}
	if v, err := f.b.InstalledVersion(ctx, "acme"); err != nil || v != "1.0-1" {
		t.Fatalf("installed = %q, %v", v, err)
	}
	// The files the rpm database lists (what the engine's service restart
	// step compares with what processes still map).
	if files, err := f.b.Files(ctx, "acme", "not-installed"); err != nil || !slices.Contains(files, "/usr/share/acme/VERSION") {
		t.Fatalf("files = %q, %v", files, err)
	}
	ups, err := f.b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].Name != "acme" || ups[0].EVR.String() != "1.1-1" || !ups[0].Security || ups[0].Severity != "Critical" {
		t.Fatalf("upgradable = %+v", ups)
	}
	ps, err := f.b.Payloads(ctx, []string{"acme-1.1-1"})
	if err != nil {
		t.Fatal(err)
	}
	served := f.repo.PackagePath(f.v2.FileName())
	if len(ps) != 1 || ps[0].SHA256 != fileSHA(t, served) || ps[0].URL != f.repo.URL()+"Packages/"+f.v2.FileName() || ps[0].Repo != "patchring-test" {
		t.Fatalf("payload = %+v, want sha256 %s of %s", ps, fileSHA(t, served), served)
	}
	st, _ := os.Stat(served)
	if ps[0].Size != st.Size() {
		t.Fatalf("payload size %d, file %d", ps[0].Size, st.Size())
	}
	// Simulate the upgrade from a placed file.
	staged := filepath.Join(f.dir, "staged.rpm")
	data, _ := os.ReadFile(served)
	os.WriteFile(staged, data, 0o644)
	if _, err := f.b.Place(ctx, staged, "acme", "1.0-1", ""); !errors.Is(err, dnf.ErrPayloadMismatch) {
		t.Fatalf("placing 1.1's file as 1.0: %v, want ErrPayloadMismatch", err)
	}
	placed, err := f.b.Place(ctx, staged, "acme", "1.1-1", "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := f.b.Placed("acme", "1.1-1"); !ok || p != placed {
		t.Fatalf("Placed = %q, %v; want %q", p, ok, placed)
	}
	tx, err := f.b.Simulate(ctx, []string{placed}, nil)
	if err != nil || len(tx) != 1 || tx[0].Action != dnf.TxUpgrade || tx[0].EVR.String() != "1.1-1" {
		t.Fatalf("simulate = %+v, %v", tx, err)
	}
	if err := f.b.Apply(ctx, []string{placed}, nil, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.b.InstalledVersion(ctx, "acme"); v != "1.1-1" {
		t.Fatalf("after the upgrade acme is %q", v)
	}
	// Downgrade from a placed file (rollback).
	staged = filepath.Join(f.dir, "staged10.rpm")
	data, _ = os.ReadFile(f.repo.PackagePath(f.v1.FileName()))
	os.WriteFile(staged, data, 0o644)
	old, err := f.b.Place(ctx, staged, "acme", "1.0-1", "")
	if err != nil {
		t.Fatal(err)
	}
	tx, err = f.b.Simulate(ctx, []string{old}, nil)
	if err != nil || len(tx) != 1 || tx[0].Action != dnf.TxDowngrade {
		t.Fatalf("simulate downgrade = %+v, %v", tx, err)
	}
	if err := f.b.Apply(ctx, []string{old}, nil, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := f.b.InstalledVersion(ctx, "acme"); v != "1.0-1" {
		t.Fatalf("after the downgrade acme is %q", v)
	}
	if d, err := f.b.Duplicates(ctx); err != nil || len(d) > 0 {
		t.Fatalf("duplicates = %v, %v", d, err)
	}
	if free, err := f.b.FreeSpace(); err != nil || free == 0 {
		t.Fatalf("free space = %d, %v", free, err)
	}
	if _, _, err := f.b.NeedsReboot(ctx); err != nil {
		t.Fatalf("needs-restarting -r: %v", err)
	}
}

func TestBackendFailingPostScriptlet(t *testing.T) {
	ctx := ctxT(t)
	v2 := dnftest.Package{Name: "acme", Version: "1.1", Post: dnftest.FailingScript("/")}
	f := newFixture(t, v2)
	if err := f.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Apply(ctx, []string{f.v1.NEVRA()}, nil, false); err != nil {
		t.Fatal(err)
	}
	err := f.b.Apply(ctx, []string{f.v2.NEVRA()}, nil, false)
	var se *dnf.ScriptletError
	if !errors.As(err, &se) || se.Scriptlet != "%post" || !strings.HasPrefix(se.Package, "acme-1.1-1") {
		t.Fatalf("install with a failing %%post: %v, want a ScriptletError", err)
	}
}

func TestBackendWaitsForRPMLock(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t, dnftest.Package{})
	if err := f.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Apply(ctx, []string{f.v1.NEVRA()}, nil, false); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(f.b.Paths().Lock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(lock.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if err := f.b.WaitLock(ctx, 300*time.Millisecond); !errors.Is(err, dnf.ErrLocked) {
		t.Fatalf("WaitLock with the lock held: %v, want ErrLocked", err)
	}
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(lock.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	if err := f.b.WaitLock(ctx, time.Second); err != nil {
		t.Fatalf("WaitLock with the lock free: %v", err)
	}
}

// TestBackendRemoveDuplicates: rpm -i --force puts a second version of
// acme into the database, as an upgrade interrupted between adding the
// new version and erasing the old leaves it; RemoveDuplicates erases the
// older.
func TestBackendRemoveDuplicates(t *testing.T) {
	ctx := ctxT(t)
	f := newFixture(t, dnftest.Package{})
	if err := f.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Apply(ctx, []string{f.v1.NEVRA()}, nil, false); err != nil {
		t.Fatal(err)
	}
	if out, err := f.sb.Run(ctx, "rpm", "-i", "--force", "--nosignature", f.repo.PackagePath(f.v2.FileName())); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d, err := f.b.Duplicates(ctx); err != nil || len(d) != 1 {
		t.Fatalf("duplicates = %v, %v; want acme twice", d, err)
	}
	if err := f.b.RemoveDuplicates(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := f.b.Duplicates(ctx); err != nil || len(d) != 0 {
		t.Fatalf("duplicates after RemoveDuplicates = %v, %v", d, err)
	}
	if v, _ := f.b.InstalledVersion(ctx, "acme"); v != "1.1-1" {
		t.Fatalf("acme is %q, want the newer 1.1-1", v)
	}
	if out, err := f.sb.Run(ctx, "rpm", "--verify", "acme"); err != nil {
		t.Fatalf("rpm --verify: %v\n%s", err, out)
	}
}
