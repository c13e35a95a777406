package dnftest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/dnf/dnftest"
)

func requireTools(t *testing.T) {
	t.Helper()
	if err := dnftest.CheckTools(); err != nil {
		t.Skipf("dnf tools missing: %v", err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// signedRepo serves acme 1.0 and 1.1, signed, in a sandbox that knows it.
func signedRepo(t *testing.T) (*dnftest.Repo, *dnftest.Sandbox, dnftest.Package, dnftest.Package) {
	t.Helper()
	dir := t.TempDir()
	v1 := dnftest.Package{Name: "acme", Version: "1.0", Files: []dnftest.File{{Path: "/usr/share/acme/VERSION", Body: []byte("1.0\n")}},
		Post: `echo "acme $1" > /var/lib/acme-post`}
	v2 := v1
	v2.Version, v2.Files = "1.1", []dnftest.File{{Path: "/usr/share/acme/VERSION", Body: []byte("1.1\n")}}
	signer := dnftest.MustSigner(t)
	repo := dnftest.MustStartRepo(t, dnftest.RepoConfig{Signer: signer})
	repo.MustAdd(t, dnftest.MustBuildRPM(t, dir, v1), dnftest.MustBuildRPM(t, dir, v2))
	sb := dnftest.MustSandbox(t, dnftest.SandboxOptions{})
	sb.MustAddRepo(t, "patchring-test", repo, dnftest.RepoOptions{})
	return repo, sb, v1, v2
}

func TestSandboxInstallUpgradeDowngrade(t *testing.T) {
	requireTools(t)
	dnftest.GuardHost(t)
	ctx := ctxT(t)
	_, sb, v1, v2 := signedRepo(t)

	if out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA()); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	check := func(want string) {
		t.Helper()
		got, err := sb.InstalledVersion(ctx, "acme")
		if err != nil || got != want {
			t.Fatalf("acme installed = %q, %v; want %q", got, err, want)
		}
	}
	check(v1.EVR())
	if post, err := readFile(sb.Path("var/lib/acme-post")); err != nil || post != "acme 1\n" {
		t.Fatalf("%%post did not run chrooted in the root: %q, %v", post, err)
	}
	out, err := sb.Run(ctx, "dnf", "check-update")
	if err == nil || !strings.Contains(string(out), "1.1-1") {
		t.Fatalf("check-update should list acme 1.1 (exit 100): %v\n%s", err, out)
	}
	if out, err := sb.Run(ctx, "dnf", "upgrade", "acme"); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	check(v2.EVR())
	if out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA()); err != nil {
		t.Fatalf("downgrade by install: %v\n%s", err, out)
	}
	check(v1.EVR())
	// The packages carry the repository's signature.
	out, err = sb.Run(ctx, "rpm", "-qi", "acme")
	if err != nil || !strings.Contains(string(out), "Signature   : EdDSA") {
		t.Fatalf("installed acme is not signed: %v\n%s", err, out)
	}
	// dnf's own state stayed in the root.
	for _, rel := range []string{"var/lib/rpm/rpmdb.sqlite", "var/lib/dnf/history.sqlite", "var/log/dnf.log"} {
		if _, err := readFile(sb.Path(rel)); err != nil {
			t.Errorf("%s not in the root: %v", rel, err)
		}
	}
}

func TestTamperedPackageRefused(t *testing.T) {
	requireTools(t)
	dnftest.GuardHost(t)
	ctx := ctxT(t)
	repo, sb, v1, _ := signedRepo(t)
	data, err := repo.ReadFile("Packages/" + v1.FileName())
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-10] ^= 0xff
	repo.Override("Packages/"+v1.FileName(), bad)
	out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA())
	if err == nil {
		t.Fatalf("dnf installed a tampered package:\n%s", out)
	}
	if v, _ := sb.InstalledVersion(ctx, "acme"); v != "" {
		t.Fatalf("acme %s installed from a tampered payload", v)
	}
	if !bytes.Contains(out, []byte("checksum")) && !bytes.Contains(out, []byte("Checksum")) && !bytes.Contains(out, []byte("digest")) {
		t.Errorf("refusal does not mention the checksum:\n%s", out)
	}
}

func TestTamperedRepomdRefused(t *testing.T) {
	requireTools(t)
	dnftest.GuardHost(t)
	ctx := ctxT(t)
	repo, sb, v1, _ := signedRepo(t)
	md, err := repo.ReadFile("repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	repo.Override("repodata/repomd.xml", bytes.Replace(md, []byte("<revision>"), []byte("<revision>6"), 1))
	out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA())
	if err == nil {
		t.Fatalf("dnf used a repomd.xml whose signature does not match:\n%s", out)
	}
	if !bytes.Contains(bytes.ToLower(out), []byte("signature")) && !bytes.Contains(bytes.ToLower(out), []byte("gpg")) {
		t.Errorf("refusal does not mention the signature:\n%s", out)
	}
	if v, _ := sb.InstalledVersion(ctx, "acme"); v != "" {
		t.Fatalf("acme %s installed from tampered metadata", v)
	}
}

func TestUpdateinfoAdvisories(t *testing.T) {
	requireTools(t)
	dnftest.GuardHost(t)
	ctx := ctxT(t)
	repo, sb, v1, v2 := signedRepo(t)
	if err := repo.SetAdvisories(ctx, dnftest.Advisory{ID: "PRT-2026-0001", Type: "security", Severity: "Important",
		Title: "acme: fix", CVEs: []string{"CVE-2026-1234"}, Packages: []dnftest.Package{v2}}); err != nil {
		t.Fatal(err)
	}
	if out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA()); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	out, err := sb.Run(ctx, "dnf", "-q", "updateinfo", "list", "--security")
	if err != nil || !strings.Contains(string(out), "PRT-2026-0001") || !strings.Contains(string(out), "Important/Sec.") {
		t.Fatalf("updateinfo list: %v\n%s", err, out)
	}
}

func readFile(p string) (string, error) {
	b, err := osReadFile(p)
	return string(b), err
}
