package dnftest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Releasever is the release version sandboxes pass to dnf (there is no
// system-release package in the root to read it from).
const Releasever = "9"

// SandboxOptions configures NewSandbox.
type SandboxOptions struct {
	// NoShell leaves /bin/sh out of the root (scriptlets then fail).
	NoShell bool
	// TempDir is where the sandbox's directory is made; "" is the
	// system's temporary directory.
	TempDir string
}

// Sandbox is an empty root dnf and rpm manage with --installroot; nothing
// outside its directory changes.
type Sandbox struct {
	// Dir holds Root, Home and the dnf configuration.
	Dir string
	// Root is the installroot.
	Root string
	// Home is HOME for dnf and rpm: its .rpmmacros puts the rpm database
	// at Root/var/lib/rpm.
	Home string
	// Conf is the dnf.conf passed with -c.
	Conf string
	// ReposDir holds the .repo files (Root/etc/yum.repos.d).
	ReposDir string
}

// CheckTools returns an error naming a missing tool.
func CheckTools() error {
	for _, tool := range []string{"dnf", "rpm", "rpmsign", "createrepo_c", "modifyrepo_c", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found in PATH (Debian packages dnf, rpm, createrepo-c, gnupg; `make deps`): %w", tool, err)
		}
	}
	return nil
}

// NewSandbox makes a sandbox root.
func NewSandbox(opts SandboxOptions) (*Sandbox, error) {
	if err := CheckTools(); err != nil {
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	dir, err := os.MkdirTemp(opts.TempDir, "dnftest-root-")
	if err != nil {
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	s := &Sandbox{Dir: dir, Root: filepath.Join(dir, "root"), Home: filepath.Join(dir, "home"), Conf: filepath.Join(dir, "dnf.conf")}
	s.ReposDir = filepath.Join(s.Root, "etc", "yum.repos.d")
	if err := s.layout(opts); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	return s, nil
}

// MustSandbox is NewSandbox for tests; the sandbox is removed at cleanup.
func MustSandbox(t TB, opts SandboxOptions) *Sandbox {
	t.Helper()
	s, err := NewSandbox(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *Sandbox) layout(opts SandboxOptions) error {
	for _, d := range []string{s.Home, s.ReposDir, s.Path("var/lib/rpm"), s.Path("var/cache/dnf"), s.Path("var/log"), s.Path("var/lib/dnf"), s.Path("tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(s.Home, ".rpmmacros"), []byte("%_dbpath /var/lib/rpm\n"), 0o644); err != nil {
		return err
	}
	// Paths in dnf.conf are inside the installroot.
	conf := `[main]
gpgcheck=1
repo_gpgcheck=1
localpkg_gpgcheck=1
install_weak_deps=0
keepcache=0
reposdir=/etc/yum.repos.d
cachedir=/var/cache/dnf
logdir=/var/log
persistdir=/var/lib/dnf
metadata_expire=0
best=1
`
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		return err
	}
	if !opts.NoShell {
		if err := copyShell(s.Root); err != nil {
			return fmt.Errorf("copy /bin/sh into the root: %w", err)
		}
	}
	return nil
}

var lddPathRE = regexp.MustCompile(`(/\S+)\s+\(0x`)

// copyShell copies the host's /bin/sh and the libraries it links into
// root, so that rpm can run scriptlets chrooted there.
func copyShell(root string) error {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		return err
	}
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", sh, err)
	}
	files := map[string]string{sh: "/bin/sh"}
	for _, m := range lddPathRE.FindAllStringSubmatch(string(out), -1) {
		files[m[1]] = m[1]
	}
	for src, dst := range files {
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		target := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// Path is rel inside the root.
func (s *Sandbox) Path(rel string) string { return filepath.Join(s.Root, rel) }

// Env is the environment for dnf and rpm in this sandbox.
func (s *Sandbox) Env() []string { return []string{"HOME=" + s.Home} }

// DNFArgs are the global options that point dnf at the sandbox.
func (s *Sandbox) DNFArgs() []string {
	return []string{"--installroot", s.Root, "-c", s.Conf, "--releasever", Releasever,
		"--setopt=reposdir=" + s.ReposDir, "--disableplugin=local,generate_completion_cache"}
}

// RPMArgs are the global options that point rpm at the sandbox.
func (s *Sandbox) RPMArgs() []string { return []string{"--root", s.Root, "--dbpath", "/var/lib/rpm"} }

// RepoOptions configures AddRepo.
type RepoOptions struct {
	// Unsigned turns gpgcheck and repo_gpgcheck off for this repository.
	Unsigned bool
	// Priority is dnf's repository priority (lower wins); 0 leaves the
	// default.
	Priority int
	// BaseURL is where the sandbox reaches the repository when that is
	// not r.URL() (r's directory served at another address, e.g. inside
	// a network namespace); "" uses r.URL().
	BaseURL string
}

// AddRepo writes id.repo for r (gpgcheck and repo_gpgcheck on, with the
// repository's key, unless the options say otherwise).
func (s *Sandbox) AddRepo(id string, r *Repo, opts RepoOptions) error {
	var b strings.Builder
	base := cmp.Or(opts.BaseURL, r.URL())
	fmt.Fprintf(&b, "[%s]\nname=%s\nbaseurl=%s\nenabled=1\nmetadata_expire=0\n", id, id, base)
	if opts.Unsigned || r.cfg.Signer == nil {
		b.WriteString("gpgcheck=0\nrepo_gpgcheck=0\n")
	} else {
		fmt.Fprintf(&b, "gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\n", r.cfg.Signer.KeyFile)
	}
	if opts.Priority > 0 {
		fmt.Fprintf(&b, "priority=%d\n", opts.Priority)
	}
	return os.WriteFile(filepath.Join(s.ReposDir, id+".repo"), []byte(b.String()), 0o644)
}

// MustAddRepo is AddRepo for tests.
func (s *Sandbox) MustAddRepo(t TB, id string, r *Repo, opts RepoOptions) {
	t.Helper()
	if err := s.AddRepo(id, r, opts); err != nil {
		t.Fatalf("%v", err)
	}
}

// Run runs dnf (name "dnf", with DNFArgs, -y and --refresh) or rpm (name "rpm", with
// RPMArgs) in the sandbox and returns its combined output.
func (s *Sandbox) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	switch name {
	case "dnf":
		// --refresh: metadata_expire=0 still counts metadata fetched
		// within the same second as fresh, and a test that adds a package
		// and upgrades at once would find nothing to do.
		args = append(append(s.DNFArgs(), "-y", "--refresh"), args...)
	case "rpm":
		args = append(s.RPMArgs(), args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"LC_ALL=C.UTF-8", "PATH=" + os.Getenv("PATH")}, s.Env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %v: %w: %s", name, args, err, out.String())
	}
	return out.Bytes(), nil
}

// InstalledVersion is the [epoch:]version-release of pkg in the sandbox's
// rpm database, "" when not installed.
func (s *Sandbox) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	out, err := s.Run(ctx, "rpm", "-q", "--qf", "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n", "--", pkg)
	if err != nil {
		if bytes.Contains(out, []byte("is not installed")) {
			return "", nil
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Close removes the sandbox.
func (s *Sandbox) Close() error { return os.RemoveAll(s.Dir) }

// OpenSandbox returns the sandbox NewSandbox made in dir (a process that
// did not make it, such as a test's agent subprocess, uses it so).
func OpenSandbox(dir string) *Sandbox {
	s := &Sandbox{Dir: dir, Root: filepath.Join(dir, "root"), Home: filepath.Join(dir, "home"), Conf: filepath.Join(dir, "dnf.conf")}
	s.ReposDir = filepath.Join(s.Root, "etc", "yum.repos.d")
	return s
}
