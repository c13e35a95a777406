package apttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SandboxOptions configures NewSandbox. The zero value is ready to use.
type SandboxOptions struct {
	// Arch is APT::Architecture; default DefaultArch.
	Arch string
	// TempDir is where the sandbox directory is created; default os.TempDir().
	TempDir string
	// ProxyAllowed leaves out the sandbox's "no proxy for 127.0.0.1"
	// setting, so that an Acquire::http::Proxy option given to apt (the
	// agent's apt proxy) applies to the sandbox's local repositories. The
	// environment's http_proxy is dropped either way.
	ProxyAllowed bool
}

// Sandbox is a root directory laid out like a Debian system's package state
// plus an APT_CONFIG file that points apt and dpkg at it. Real apt-get,
// apt-cache, dpkg and dpkg-query run against it as root without touching the
// host: dpkg runs with --root, --admindir and --force-script-chrootless
// (maintainer scripts run on the host with DPKG_ROOT set to Root), and no
// host sources or configuration snippets are read.
type Sandbox struct {
	// Root is the sandbox's root directory (absolute, no trailing slash).
	Root string
	// AdminDir is dpkg's database directory, Root/var/lib/dpkg.
	AdminDir string
	// AptConfig is the file to pass as APT_CONFIG.
	AptConfig string
	// Arch is APT::Architecture.
	Arch string

	dir          string
	proxyAllowed bool
}

// Tools the sandbox drives, with the Debian package that ships each.
var requiredTools = []struct{ tool, pkg string }{
	{"apt-get", "apt"},
	{"apt-cache", "apt"},
	{"apt-config", "apt"},
	{"dpkg", "dpkg"},
	{"dpkg-query", "dpkg"},
	{"dpkg-deb", "dpkg"},
}

// CheckTools reports the first tool the sandbox needs that is not in PATH,
// naming the Debian package to install.
func CheckTools() error {
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t.tool); err != nil {
			return fmt.Errorf("%s not found in PATH: install the Debian package %q", t.tool, t.pkg)
		}
	}
	return nil
}

// RequireTools fails t when a tool the sandbox needs is missing.
func RequireTools(t TB) {
	t.Helper()
	if err := CheckTools(); err != nil {
		t.Fatalf("%v", err)
	}
}

// NewSandbox creates an empty sandbox in a new temporary directory. Close
// removes it.
func NewSandbox(opts SandboxOptions) (*Sandbox, error) {
	if err := CheckTools(); err != nil {
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	if opts.Arch == "" {
		opts.Arch = DefaultArch
	}
	dir, err := os.MkdirTemp(opts.TempDir, "apttest-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	root := filepath.Join(dir, "root")
	s := &Sandbox{
		Root:      root,
		AdminDir:  filepath.Join(root, "var/lib/dpkg"),
		AptConfig: filepath.Join(dir, "apt.conf"),
		Arch:      opts.Arch,
		dir:       dir,

		proxyAllowed: opts.ProxyAllowed,
	}
	if err := s.layout(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new sandbox: %w", err)
	}
	return s, nil
}

// MustSandbox is NewSandbox for tests: it checks the tools, fails t on error
// and removes the sandbox when the test ends.
func MustSandbox(t TB, opts SandboxOptions) *Sandbox {
	t.Helper()
	RequireTools(t)
	s, err := NewSandbox(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *Sandbox) layout() error {
	for _, d := range []string{
		"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial",
		"etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
		"var/log/apt", "var/run", "tmp",
	} {
		if err := os.MkdirAll(filepath.Join(s.Root, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available", "etc/apt/sources.list"} {
		if err := os.WriteFile(filepath.Join(s.Root, f), nil, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(s.AptConfig, []byte(s.aptConfigText()), 0o644)
}

// aptConfigText is the APT_CONFIG file. Every Dir is under Root, so apt
// reads no host configuration parts, sources or preferences.
func (s *Sandbox) aptConfigText() string {
	var b strings.Builder
	q := func(v string) string { return `"` + v + `"` }
	fmt.Fprintf(&b, "Dir %s;\n", q(s.Root+"/"))
	fmt.Fprintf(&b, "Dir::State %s;\n", q("var/lib/apt/"))
	fmt.Fprintf(&b, "Dir::State::status %s;\n", q(filepath.Join(s.AdminDir, "status")))
	fmt.Fprintf(&b, "Dir::Etc %s;\n", q("etc/apt/"))
	fmt.Fprintf(&b, "Dir::Cache %s;\n", q("var/cache/apt/"))
	fmt.Fprintf(&b, "Dir::Log %s;\n", q("var/log/apt/"))
	fmt.Fprintf(&b, "APT::Architecture %s;\n", q(s.Arch))
	fmt.Fprintf(&b, "APT::Architectures { %s; };\n", q(s.Arch))
	b.WriteString("DPkg::Options {")
	for _, o := range append(s.DpkgArgs(), "--force-confold") {
		fmt.Fprintf(&b, " %s;", q(o))
	}
	b.WriteString(" };\n")
	b.WriteString(`APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "10";
Dpkg::Use-Pty "0";
`)
	if !s.proxyAllowed {
		b.WriteString("Acquire::http::Proxy::127.0.0.1 \"DIRECT\";\n")
	}
	return b.String()
}

// DpkgArgs are the options to give dpkg when calling it directly on the
// sandbox; apt gives them itself through DPkg::Options. dpkg-query needs
// only --admindir=AdminDir.
func (s *Sandbox) DpkgArgs() []string {
	return []string{
		"--root=" + s.Root,
		"--admindir=" + s.AdminDir,
		"--force-script-chrootless",
		"--force-not-root",
		"--log=" + filepath.Join(s.Root, "var/log/dpkg.log"),
	}
}

// Env is the environment for running apt and dpkg on the sandbox: the
// process's environment without variables that would redirect dpkg or skip
// its locks, plus APT_CONFIG, a C locale and the noninteractive debconf
// frontend.
func (s *Sandbox) Env() []string {
	drop := map[string]bool{
		"APT_CONFIG": true, "DPKG_ROOT": true, "DPKG_ADMINDIR": true,
		"DPKG_FRONTEND_LOCKED": true, "LANG": true, "LANGUAGE": true, "LC_ALL": true,
		"http_proxy": true, "HTTP_PROXY": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env,
		"APT_CONFIG="+s.AptConfig,
		"LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive",
		"APT_LISTCHANGES_FRONTEND=none",
	)
}

// Path joins rel to Root.
func (s *Sandbox) Path(rel string) string { return filepath.Join(s.Root, rel) }

// AddSource writes line to etc/apt/sources.list.d/<name>.list.
func (s *Sandbox) AddSource(name, line string) error {
	p := filepath.Join(s.Root, "etc/apt/sources.list.d", name+".list")
	if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
		return fmt.Errorf("add source %s: %w", name, err)
	}
	return nil
}

// AddRepo adds r to the sandbox's sources under name.
func (s *Sandbox) AddRepo(name string, r *Repo) error { return s.AddSource(name, r.SourcesLine()) }

// MustAddRepo is AddRepo for tests.
func (s *Sandbox) MustAddRepo(t TB, name string, r *Repo) {
	t.Helper()
	if err := s.AddRepo(name, r); err != nil {
		t.Fatalf("%v", err)
	}
}

// Command returns a command running name with args in the sandbox's
// environment. It adds no arguments: calls to dpkg need DpkgArgs.
func (s *Sandbox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = s.Env()
	cmd.Dir = s.dir
	return cmd
}

// Run runs name with args in the sandbox's environment and returns its
// combined output; the error names the command and includes the output.
func (s *Sandbox) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := s.Command(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.Bytes(), nil
}

// DpkgInstall installs .deb files with dpkg -i directly (no repository):
// a quick way to seed a sandbox.
func (s *Sandbox) DpkgInstall(ctx context.Context, debs ...string) error {
	args := append(s.DpkgArgs(), "--force-confold", "-i")
	_, err := s.Run(ctx, "dpkg", append(args, debs...)...)
	return err
}

// InstalledVersion returns the version dpkg-query reports for pkg with its
// status abbreviation, e.g. ("1.0", "ii "); ("", "") when dpkg does not know
// the package.
func (s *Sandbox) InstalledVersion(ctx context.Context, pkg string) (version, status string, err error) {
	var stdout, stderr bytes.Buffer
	cmd := s.Command(ctx, "dpkg-query", "--admindir="+s.AdminDir, "-W", "-f", "${Version}\t${db:Status-Abbrev}", "--", pkg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(stderr.String(), "no packages found") {
			return "", "", nil
		}
		return "", "", fmt.Errorf("dpkg-query %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	version, status, _ = strings.Cut(stdout.String(), "\t")
	return version, status, nil
}

// Close removes the sandbox directory.
func (s *Sandbox) Close() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("close sandbox: %w", err)
	}
	return nil
}
