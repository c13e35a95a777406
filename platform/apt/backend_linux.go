package apt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/platform/vercmp"
)

// Backend drives apt and dpkg. Its methods are safe for concurrent use;
// the ones that change packages (Install, Remove, ConfigurePending) are
// serialised with each other.
type Backend struct {
	opts     Options
	env      []string
	paths    Paths
	dpkgArgs []string // options for direct dpkg calls, from DPkg::Options
	log      *slog.Logger
	// aptInputs are the files and directories apt reads to answer
	// Upgradable, besides dpkg's database (see memo_linux.go).
	aptInputs []string

	mu sync.Mutex // serialises package changes

	dpkgMemo memo[[]PackageStatus]
	upMemo   memo[[]Candidate]
}

// The tools the backend runs and the Debian packages that ship them.
var tools = []struct{ tool, pkg string }{
	{"apt-get", "apt"}, {"apt-cache", "apt"}, {"apt-config", "apt"},
	{"dpkg", "dpkg"}, {"dpkg-query", "dpkg"}, {"dpkg-deb", "dpkg"},
}

// New checks that the tools are installed and reads the paths and dpkg
// options from apt's configuration (with opts.AptConfig when set).
func New(ctx context.Context, opts Options) (*Backend, error) {
	for _, t := range tools {
		if _, err := exec.LookPath(t.tool); err != nil {
			return nil, fmt.Errorf("apt backend: %s not found in PATH (Debian package %q)", t.tool, t.pkg)
		}
	}
	b := &Backend{opts: opts, log: opts.Logger}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.env = buildEnv(os.Environ(), opts)

	out, err := b.output(ctx, "apt-config shell", "apt-config", "shell",
		"ROOT", "Dir/d", "STATUS", "Dir::State::status/f", "ARCHIVES", "Dir::Cache::Archives/d", "ARCH", "APT::Architecture")
	if err != nil {
		return nil, fmt.Errorf("apt backend: %w", err)
	}
	vars, err := parseShellVars(out)
	if err != nil {
		return nil, fmt.Errorf("apt backend: %w", err)
	}
	b.paths = Paths{
		Root:     filepath.Clean(vars["ROOT"]),
		Status:   vars["STATUS"],
		Archives: filepath.Clean(vars["ARCHIVES"]),
		Arch:     vars["ARCH"],
	}
	b.paths.AdminDir = filepath.Dir(b.paths.Status)
	if b.paths.Root == "." || b.paths.Status == "" || b.paths.Archives == "." || b.paths.Arch == "" {
		return nil, fmt.Errorf("apt backend: apt-config left Dir, Dir::State::status, Dir::Cache::Archives or APT::Architecture empty: %q", out)
	}

	out, err = b.output(ctx, "apt-config dump", "apt-config", "dump", "--format", "%f=%v%n", "DPkg::Options")
	if err != nil {
		return nil, fmt.Errorf("apt backend: %w", err)
	}
	b.dpkgArgs = parseDumpList(out, "DPkg::Options")
	if !slices.ContainsFunc(b.dpkgArgs, func(s string) bool { return strings.HasPrefix(s, "--admindir") }) {
		b.dpkgArgs = append(b.dpkgArgs, "--admindir="+b.paths.AdminDir)
	}
	if err := b.readAptInputs(ctx); err != nil {
		return nil, fmt.Errorf("apt backend: %w", err)
	}
	return b, nil
}

// buildEnv is the environment of every command: the process's without
// variables that would change dpkg's root or skip its locks, with a C
// locale, the noninteractive debconf frontend and the options' additions.
func buildEnv(base []string, opts Options) []string {
	drop := map[string]bool{
		"DPKG_ROOT": true, "DPKG_ADMINDIR": true, "DPKG_FRONTEND_LOCKED": true,
		"LANG": true, "LANGUAGE": true, "LC_ALL": true, "LC_MESSAGES": true,
	}
	if opts.AptConfig != "" {
		drop["APT_CONFIG"] = true
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	env = append(env, "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none")
	if opts.AptConfig != "" {
		env = append(env, "APT_CONFIG="+opts.AptConfig)
	}
	return append(env, opts.Env...)
}

// Paths returns the directories the backend works on.
func (b *Backend) Paths() Paths { return b.paths }

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent writers (a command's stdout and stderr copiers).
type tailBuffer struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.truncated {
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 {
			return "…\n" + string(t.buf[i+1:])
		}
	}
	return string(t.buf)
}

// runResult is what a command produced.
type runResult struct {
	stdout   []byte
	combined string // tail of stdout and stderr interleaved
}

// run runs name with args. op names the command in errors and logs (e.g.
// "apt-get install"). A failure is a *CommandError with the tail of
// standard error. Cancelling ctx sends SIGTERM, then SIGKILL 30 s later.
func (b *Backend) run(ctx context.Context, op, name string, args ...string) (runResult, error) {
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4 << 10}
	combined := &tailBuffer{max: 16 << 10}
	if name == "apt-get" && b.opts.HTTPProxy != "" {
		args = append([]string{"-o", "Acquire::http::Proxy=" + b.opts.HTTPProxy, "-o", "Acquire::PDiffs=false"}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env
	cmd.Dir = "/"
	cmd.Stdout = io.MultiWriter(&stdout, combined)
	cmd.Stderr = io.MultiWriter(stderr, combined)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err := cmd.Run()
	b.log.DebugContext(ctx, "ran command", "op", op, "args", args, "duration", time.Since(start), "err", err)
	res := runResult{stdout: stdout.Bytes(), combined: combined.String()}
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return res, &CommandError{Command: op, Args: args, ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return res, nil
}

// output runs a read-only command and returns its standard output.
func (b *Backend) output(ctx context.Context, op, name string, args ...string) ([]byte, error) {
	res, err := b.run(ctx, op, name, args...)
	return res.stdout, err
}

// Refresh downloads the package indices (apt-get update). Any index that
// fails to download or verify is an error.
func (b *Backend) Refresh(ctx context.Context) error {
	res, err := b.run(ctx, "apt-get update", "apt-get", "update", "-q", "--error-on=any")
	if err != nil {
		if le, ok := parseLockError(res.combined, b.paths.AdminDir); ok {
			return fmt.Errorf("refresh: %w", le)
		}
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

// installedNames lists the packages dpkg has unpacked or installed, as
// names apt-cache and apt-get accept.
func (b *Backend) installedNames(ctx context.Context) ([]string, error) {
	sts, err := b.statuses(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range sts {
		if s.State == "not-installed" || s.State == "config-files" {
			continue
		}
		name := s.Name
		if s.Arch != "" && s.Arch != "all" && s.Arch != b.paths.Arch {
			name += ":" + s.Arch
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// chunks splits args so that no command line gets too long.
func chunks(args []string) [][]string {
	const n = 500
	var res [][]string
	for len(args) > n {
		res = append(res, args[:n])
		args = args[n:]
	}
	if len(args) > 0 {
		res = append(res, args)
	}
	return res
}

// policy runs apt-cache policy for the package files and for pkgs.
func (b *Backend) policy(ctx context.Context, pkgs []string) (policy, error) {
	out, err := b.output(ctx, "apt-cache policy", "apt-cache", "policy")
	if err != nil {
		return policy{}, err
	}
	pol, err := parsePolicy(out)
	if err != nil {
		return policy{}, err
	}
	for _, c := range chunks(pkgs) {
		out, err := b.output(ctx, "apt-cache policy", "apt-cache", append([]string{"policy", "--"}, c...)...)
		if err != nil {
			return policy{}, err
		}
		p, err := parsePolicy(out)
		if err != nil {
			return policy{}, err
		}
		pol.Packages = append(pol.Packages, p.Packages...)
	}
	return pol, nil
}

// notOfferedRE matches apt-get download's messages for a version no
// configured source offers: one apt knows only as installed, one it does
// not know, and a package it does not know.
var notOfferedRE = regexp.MustCompile(`(?m)^E: (?:Can't find a source to download version '([^']+)' of '([^']+)'|Version '([^']+)' for '([^']+)' was not found|Unable to locate package (\S+))$`)

// notOffered returns the name=version specs (names without an
// architecture) and the bare names apt-get download's stderr says no
// source offers.
func notOffered(stderr string) map[string]bool {
	missing := map[string]bool{}
	bare := func(name string) string { n, _, _ := strings.Cut(name, ":"); return n }
	for _, m := range notOfferedRE.FindAllStringSubmatch(stderr, -1) {
		switch {
		case m[1] != "":
			missing[bare(m[2])+"="+m[1]] = true
		case m[3] != "":
			missing[bare(m[4])+"="+m[3]] = true
		default:
			missing[bare(m[5])] = true
		}
	}
	return missing
}

// printURIsOptional is printURIs where the specs in optional may be
// offered by no source. apt-get download fails naming each version it
// cannot find; those that are optional are left out and the chunk is
// asked again without them. Any other failure, or one naming a spec not
// in optional, is an error.
func (b *Backend) printURIsOptional(ctx context.Context, specs []string, optional map[string]bool) ([]printURI, error) {
	var res []printURI
	for _, c := range chunks(specs) {
		for len(c) > 0 {
			out, err := b.output(ctx, "apt-get download --print-uris", "apt-get",
				append([]string{"download", "--print-uris", "-q", "--"}, c...)...)
			if err == nil {
				u, err := parsePrintURIs(out)
				if err != nil {
					return nil, err
				}
				res = append(res, u...)
				break
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				return nil, err
			}
			missing := notOffered(ce.Stderr)
			kept := c[:0:0]
			for _, s := range c {
				name, version, _ := strings.Cut(s, "=")
				name, _, _ = strings.Cut(name, ":")
				if !optional[s] || !(missing[name+"="+version] || missing[name]) {
					kept = append(kept, s)
				}
			}
			if len(kept) == len(c) {
				return nil, err
			}
			c = kept
		}
	}
	return res, nil
}

// printURIs asks apt for the payload of each name=version.
func (b *Backend) printURIs(ctx context.Context, specs []string) ([]printURI, error) {
	var res []printURI
	for _, c := range chunks(specs) {
		out, err := b.output(ctx, "apt-get download --print-uris", "apt-get",
			append([]string{"download", "--print-uris", "-q", "--"}, c...)...)
		if err != nil {
			return nil, err
		}
		u, err := parsePrintURIs(out)
		if err != nil {
			return nil, err
		}
		res = append(res, u...)
	}
	return res, nil
}

// fillSHA256 reads SHA256 from apt-cache show for candidates whose printed
// hash is of another type (apt prints the strongest it has).
func (b *Backend) fillSHA256(ctx context.Context, cands []Candidate) error {
	var specs []string
	for _, c := range cands {
		if c.SHA256 == "" {
			specs = append(specs, b.aptSpec(c.PkgVersion()))
		}
	}
	if len(specs) == 0 {
		return nil
	}
	var all []stanza
	for _, ch := range chunks(specs) {
		out, err := b.output(ctx, "apt-cache show", "apt-cache", append([]string{"show", "--"}, ch...)...)
		if err != nil {
			return err
		}
		st, err := parseStanzas(out)
		if err != nil {
			return fmt.Errorf("apt-cache show: %w", err)
		}
		all = append(all, st...)
	}
	for i := range cands {
		c := &cands[i]
		if c.SHA256 != "" {
			continue
		}
		for _, s := range all {
			if s["Package"] == c.Package && s["Version"] == c.Version && s["Architecture"] == c.Arch &&
				s["Size"] == strconv.FormatInt(c.Size, 10) && isHex(s["SHA256"], 64) {
				c.SHA256 = strings.ToLower(s["SHA256"])
				break
			}
		}
		if c.SHA256 == "" {
			return fmt.Errorf("%s %s: the index has no SHA256 for the payload", c.Package, c.Version)
		}
	}
	return nil
}

// Upgradable lists the installed packages whose candidate version (the one
// apt would install) is newer than the installed one, with each
// candidate's sources, security classification and payload.
func (b *Backend) Upgradable(ctx context.Context) ([]Candidate, error) {
	stamp, err := b.aptStamp()
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	cands, err := b.upMemo.get(stamp, func() ([]Candidate, error) { return b.upgradable(ctx) })
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, len(cands))
	for i, c := range cands {
		c.Sources, c.Depends = slices.Clone(c.Sources), slices.Clone(c.Depends)
		out[i] = c
	}
	return out, nil
}

// upgradable asks apt what Upgradable returns.
func (b *Backend) upgradable(ctx context.Context) ([]Candidate, error) {
	names, err := b.installedNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	pol, err := b.policy(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	ups, err := upgradable(pol, vercmp.Deb)
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	if len(ups) == 0 {
		return nil, nil
	}
	specs := make([]string, len(ups))
	for i, p := range ups {
		specs[i] = p.Name + "=" + p.Candidate
	}
	uris, err := b.printURIs(ctx, specs)
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	cands, err := assembleCandidates(pol, ups, uris, b.paths.Arch)
	if err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	if err := b.fillSHA256(ctx, cands); err != nil {
		return nil, fmt.Errorf("list upgradable: %w", err)
	}
	return cands, nil
}

// Candidate describes version of pkg ("name" or "name:arch") as a
// configured source carries it, whether or not it is apt's candidate: the
// way to check that a rollback target can still be fetched. It returns
// ErrNotAvailable when no source carries the version (being only in
// dpkg's status file does not count).
func (b *Backend) Candidate(ctx context.Context, pkg, version string) (Candidate, error) {
	name, arch := splitArch(pkg)
	if err := (PkgVersion{Name: name, Version: version, Arch: arch}).Validate(); err != nil {
		return Candidate{}, fmt.Errorf("candidate: %w", err)
	}
	pol, err := b.policy(ctx, []string{pkg})
	if err != nil {
		return Candidate{}, fmt.Errorf("candidate %s=%s: %w", pkg, version, err)
	}
	if len(pol.Packages) == 0 {
		return Candidate{}, fmt.Errorf("candidate %s=%s: unknown package: %w", pkg, version, ErrNotAvailable)
	}
	p := pol.Packages[0]
	sources, found := sourcesFor(pol.Files, p, version)
	if !found || len(sources) == 0 {
		return Candidate{}, fmt.Errorf("candidate %s=%s: %w", pkg, version, ErrNotAvailable)
	}
	uris, err := b.printURIs(ctx, []string{pkg + "=" + version})
	if err != nil {
		return Candidate{}, fmt.Errorf("candidate %s=%s: %w", pkg, version, err)
	}
	u, ok := findURI(uris, pkg, version, b.paths.Arch)
	if !ok {
		return Candidate{}, fmt.Errorf("candidate %s=%s: apt printed no payload URI", pkg, version)
	}
	c := []Candidate{newCandidate(p, version, sources, u)}
	if err := b.fillSHA256(ctx, c); err != nil {
		return Candidate{}, fmt.Errorf("candidate %s=%s: %w", pkg, version, err)
	}
	return c[0], nil
}

// ArchivePath is where apt looks for the payload of pkg version arch
// before downloading it.
func (b *Backend) ArchivePath(pkg, version, arch string) string {
	return filepath.Join(b.paths.Archives, ArchiveFilename(pkg, version, arch))
}

// Place puts the payload at debPath, already verified against the hash
// from signed metadata, into apt's archives directory under the name apt
// expects, so that Install with NoDownload uses it. See PlaceFrom.
func (b *Backend) Place(ctx context.Context, debPath, pkg, version, arch string) (string, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return "", fmt.Errorf("place %s %s: %w", pkg, version, err)
	}
	defer f.Close()
	return b.PlaceFrom(ctx, f, pkg, version, arch)
}

// PlaceFrom puts the payload read from r, already verified against the
// hash from signed metadata, into apt's archives directory under the name
// apt expects. The bytes are written once, to a temporary file in the
// partial directory (the archives' file system) and fsynced; dpkg-deb
// checks there that the file is pkg at version for arch
// (ErrPayloadMismatch otherwise); only then is it renamed into place and
// the directory fsynced. It returns the placed path.
func (b *Backend) PlaceFrom(ctx context.Context, r io.Reader, pkg, version, arch string) (_ string, err error) {
	if err := (PkgVersion{Name: pkg, Version: version, Arch: arch}).Validate(); err != nil || arch == "" {
		return "", fmt.Errorf("place %s %s %q: invalid package, version or architecture: %v", pkg, version, arch, err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("place %s %s: %w", pkg, version, err)
		}
	}()
	partial := filepath.Join(b.paths.Archives, "partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(partial, ".patchring-place-*.deb")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return "", err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err = tmp.Sync(); err != nil {
		return "", err
	}
	if err = tmp.Close(); err != nil {
		return "", err
	}
	got, err := b.DebPackage(ctx, tmp.Name())
	if err != nil {
		return "", err
	}
	if got.Name != pkg || got.Version != version || got.Arch != arch {
		return "", fmt.Errorf("the payload is %s %s %s: %w", got.Name, got.Version, got.Arch, ErrPayloadMismatch)
	}
	dst := b.ArchivePath(pkg, version, arch)
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	if err = atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return "", err
	}
	return dst, nil
}

// DebPackage reads the package name, version and architecture of the .deb
// file at debPath from its control fields (dpkg-deb --field).
func (b *Backend) DebPackage(ctx context.Context, debPath string) (PkgVersion, error) {
	out, err := b.output(ctx, "dpkg-deb --field", "dpkg-deb", "--field", debPath, "Package", "Version", "Architecture")
	if err != nil {
		return PkgVersion{}, err
	}
	st, err := parseStanzas(out)
	if err != nil || len(st) != 1 || st[0]["Package"] == "" || st[0]["Version"] == "" || st[0]["Architecture"] == "" {
		return PkgVersion{}, fmt.Errorf("unreadable control fields of %s: %q", debPath, out)
	}
	return PkgVersion{Name: st[0]["Package"], Version: st[0]["Version"], Arch: st[0]["Architecture"]}, nil
}

// Placed returns the path of the placed payload of pkg version arch and
// whether it is there. With an empty arch any architecture matches.
func (b *Backend) Placed(pkg, version, arch string) (string, bool) {
	if (PkgVersion{Name: pkg, Version: version, Arch: arch}).Validate() != nil {
		return "", false
	}
	if arch != "" {
		p := b.ArchivePath(pkg, version, arch)
		_, err := os.Stat(p)
		return p, err == nil
	}
	prefix := aptQuote(pkg, "_:") + "_" + aptQuote(version, "_:") + "_"
	entries, err := os.ReadDir(b.paths.Archives)
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".deb") && e.Type().IsRegular() {
			return filepath.Join(b.paths.Archives, e.Name()), true
		}
	}
	return "", false
}

// aptSpec is the name[:arch]=version argument apt-get gets for p.
func (b *Backend) aptSpec(p PkgVersion) string {
	if p.Arch != "" && p.Arch != "all" && p.Arch != b.paths.Arch {
		return p.Name + ":" + p.Arch + "=" + p.Version
	}
	return p.Name + "=" + p.Version
}

// changeArgs are the options every package-changing apt-get run gets.
func (b *Backend) changeArgs() []string {
	return []string{
		"-y", "-q",
		"-o", "Dpkg::Options::=--force-confdef",
		"-o", "Dpkg::Options::=--force-confold",
		"-o", "Dpkg::Use-Pty=0",
		"-o", "DPkg::Lock::Timeout=" + strconv.Itoa(int(b.opts.LockTimeout.Seconds())),
	}
}

// Install installs exactly the given versions non-interactively, keeping
// locally changed configuration files. With NoDownload, every payload must
// have been placed first (ErrNotPlaced otherwise) and apt downloads
// nothing. A held lock is a *LockedError; any other failure an
// *InstallError with dpkg's output. Install does not check the versions
// installed afterwards: callers confirm with InstalledVersion.
func (b *Backend) Install(ctx context.Context, pkgs []PkgVersion, opts InstallOptions) error {
	if len(pkgs) == 0 {
		return nil
	}
	for _, p := range pkgs {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if opts.NoDownload {
		for _, p := range pkgs {
			if _, ok := b.Placed(p.Name, p.Version, p.Arch); !ok {
				return fmt.Errorf("install %s: %w (expected %s)", p, ErrNotPlaced, b.ArchivePath(p.Name, p.Version, cmpOr(p.Arch, b.paths.Arch)))
			}
		}
	}
	args := append([]string{"install"}, b.changeArgs()...)
	if !opts.InstallRecommends {
		args = append(args, "--no-install-recommends")
	}
	if opts.AllowDowngrades {
		args = append(args, "--allow-downgrades")
	}
	if opts.NoDownload {
		args = append(args, "--no-download")
	}
	args = append(args, "--")
	for _, p := range pkgs {
		args = append(args, b.aptSpec(p))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.run(ctx, "apt-get install", "apt-get", args...)
	if err != nil {
		return b.changeError("install", pkgs, res, err)
	}
	return nil
}

// InstallFiles installs the .deb files at paths with apt-get, the way
// Install installs versions from the indices: non-interactively, keeping
// locally changed configuration files, with AllowDowngrades and
// InstallRecommends as for Install. It is for payloads no configured
// source carries (the signed catalog): apt installs the files as they are
// and resolves their dependencies from the configured sources. Each path
// must be absolute, end in ".deb" (how apt tells a file from a package
// name) and name a file dpkg-deb can read. NoDownload is refused: a new
// dependency may need a download. Callers verify the files (hash, control
// fields) before and the installed versions after; errors are as
// Install's.
func (b *Backend) InstallFiles(ctx context.Context, paths []string, opts InstallOptions) error {
	if len(paths) == 0 {
		return nil
	}
	args, pvs, err := b.installFilesArgs(ctx, paths, opts)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.run(ctx, "apt-get install", "apt-get", args...)
	if err != nil {
		return b.changeError("install", pvs, res, err)
	}
	return nil
}

// InstallFilesCommand returns the command InstallFiles would run for paths,
// after the same checks, for a caller that must run it detached from its
// own process (the agent installing its own package, whose maintainer
// scripts restart the agent). The command runs against this backend's
// root and configuration through its environment.
func (b *Backend) InstallFilesCommand(ctx context.Context, paths []string, opts InstallOptions) (Command, error) {
	if len(paths) == 0 {
		return Command{}, errors.New("install files: no files")
	}
	args, _, err := b.installFilesArgs(ctx, paths, opts)
	if err != nil {
		return Command{}, err
	}
	if b.opts.HTTPProxy != "" {
		args = append([]string{"-o", "Acquire::http::Proxy=" + b.opts.HTTPProxy, "-o", "Acquire::PDiffs=false"}, args...)
	}
	path, err := exec.LookPath("apt-get")
	if err != nil {
		return Command{}, fmt.Errorf("install files: %w", err)
	}
	return Command{Path: path, Args: args, Env: slices.Clone(b.env)}, nil
}

// installFilesArgs checks paths and returns apt-get's arguments to install
// them and the packages they hold.
func (b *Backend) installFilesArgs(ctx context.Context, paths []string, opts InstallOptions) ([]string, []PkgVersion, error) {
	if opts.NoDownload {
		return nil, nil, errors.New("install files: NoDownload is not supported for files")
	}
	pvs := make([]PkgVersion, 0, len(paths))
	for _, p := range paths {
		if !filepath.IsAbs(p) || !strings.HasSuffix(p, ".deb") || strings.ContainsAny(p, "\n\x00") {
			return nil, nil, fmt.Errorf("install files: %q is not an absolute path of a .deb file", p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("install files: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("install files: %s is not a regular file", p)
		}
		pv, err := b.DebPackage(ctx, p)
		if err != nil {
			return nil, nil, fmt.Errorf("install files: %w", err)
		}
		if pv.Arch == b.paths.Arch || pv.Arch == "all" {
			pv.Arch = "" // named as Install names them
		}
		pvs = append(pvs, pv)
	}
	args := append([]string{"install"}, b.changeArgs()...)
	if !opts.InstallRecommends {
		args = append(args, "--no-install-recommends")
	}
	if opts.AllowDowngrades {
		args = append(args, "--allow-downgrades")
	}
	return append(append(args, "--"), paths...), pvs, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// changeError turns a failed package change into a *LockedError or an
// *InstallError.
func (b *Backend) changeError(op string, pkgs []PkgVersion, res runResult, err error) error {
	if le, ok := parseLockError(res.combined, b.paths.AdminDir); ok {
		if le.PID > 0 && le.Command == "" {
			le.Command = processCommand(le.PID)
		}
		return fmt.Errorf("%s: %w", op, le)
	}
	return &InstallError{Op: op, Packages: pkgs, Failed: parseFailedPackages(res.combined), Unmet: parseUnmet(res.combined), Output: res.combined, Err: err}
}

// Remove removes packages (keeping their configuration files).
func (b *Backend) Remove(ctx context.Context, pkgs ...string) error {
	if len(pkgs) == 0 {
		return nil
	}
	args := append(append([]string{"remove"}, b.changeArgs()...), "--")
	pvs := make([]PkgVersion, len(pkgs))
	for i, p := range pkgs {
		if !validPackageName(p) {
			return fmt.Errorf("remove: invalid package name %q", p)
		}
		args = append(args, p)
		pvs[i] = PkgVersion{Name: p}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.run(ctx, "apt-get remove", "apt-get", args...)
	if err != nil {
		return b.changeError("remove", pvs, res, err)
	}
	return nil
}

// Status returns dpkg's record of pkg ("name" or "name:arch"); State is
// "not-installed" when dpkg does not know it.
func (b *Backend) Status(ctx context.Context, pkg string) (PackageStatus, error) {
	if !validPackageName(pkg) {
		return PackageStatus{}, fmt.Errorf("status: invalid package name %q", pkg)
	}
	all, err := b.statuses(ctx)
	if err != nil {
		return PackageStatus{}, fmt.Errorf("status %s: %w", pkg, err)
	}
	// As dpkg-query -W: "name:arch" matches that architecture only, a bare
	// name every architecture.
	name, arch := splitArch(pkg)
	var sts []PackageStatus
	for _, s := range all {
		if s.Name == name && (arch == "" || s.Arch == arch) {
			sts = append(sts, s)
		}
	}
	switch len(sts) {
	case 0:
		return PackageStatus{Name: name, Want: "unknown", State: "not-installed", Eflag: "ok"}, nil
	case 1:
		return sts[0], nil
	}
	// Several architectures: a bare name means the native or "all" one.
	for _, s := range sts {
		if s.Arch == b.paths.Arch || s.Arch == "all" {
			return s, nil
		}
	}
	return PackageStatus{}, fmt.Errorf("status %s: ambiguous, name an architecture", pkg)
}

// InstalledVersion returns the installed version of pkg, or "" when it is
// not installed (removed with only configuration files left counts as not
// installed). When dpkg has the package unpacked, half-installed or
// half-configured, it returns that version and an error wrapping
// ErrNotConfigured.
func (b *Backend) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	s, err := b.Status(ctx, pkg)
	if err != nil {
		return "", err
	}
	switch {
	case s.State == "not-installed" || s.State == "config-files":
		return "", nil
	case s.Configured():
		return s.Version, nil
	}
	return s.Version, fmt.Errorf("installed version of %s: %s is %s: %w", pkg, s.Version, s.State, ErrNotConfigured)
}

// ConfigurePending finishes what an interrupted or failed dpkg run left:
// dpkg --configure -a, with the configured DPkg::Options and old
// configuration files kept. Run it after a crash before anything else.
func (b *Backend) ConfigurePending(ctx context.Context) error {
	args := append(slices.Clone(b.dpkgArgs), "--force-confdef", "--force-confold", "--configure", "-a")
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.run(ctx, "dpkg --configure -a", "dpkg", args...)
	if err != nil {
		return b.changeError("configure", nil, res, err)
	}
	return nil
}

// Audit returns the packages dpkg --audit reports as broken (half
// installed, half configured, unpacked, awaiting triggers, …); empty when
// the database is consistent.
func (b *Backend) Audit(ctx context.Context) ([]string, error) {
	res, err := b.run(ctx, "dpkg --audit", "dpkg", "--admindir="+b.paths.AdminDir, "--audit")
	pkgs := parseAudit(res.stdout)
	if err != nil {
		// Newer dpkg exits 1 when it finds problems.
		var ce *CommandError
		if errors.As(err, &ce) && ce.ExitCode == 1 && len(pkgs) > 0 {
			return pkgs, nil
		}
		return nil, fmt.Errorf("audit: %w", err)
	}
	return pkgs, nil
}

// RebootRequired reports Debian's reboot-required flag under the root and
// the packages that asked for it (reboot-required.pkgs).
func (b *Backend) RebootRequired() (bool, []string) {
	run := filepath.Join(b.paths.Root, "var/run")
	if _, err := os.Stat(filepath.Join(run, "reboot-required")); err != nil {
		return false, nil
	}
	data, err := os.ReadFile(filepath.Join(run, "reboot-required.pkgs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	var pkgs []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(pkgs, l) {
			pkgs = append(pkgs, l)
		}
	}
	return true, pkgs
}

// Files returns the paths (in the system's root) of the files installed
// packages ship, from dpkg's file lists (dpkg-query -L); a package that is
// not installed has none. Directories are included as dpkg lists them.
func (b *Backend) Files(ctx context.Context, pkgs ...string) ([]string, error) {
	for _, pkg := range pkgs {
		if !validPackageName(pkg) {
			return nil, fmt.Errorf("files: invalid package name %q", pkg)
		}
	}
	var out []string
	// One dpkg-query for many packages: it lists them one after another
	// and exits 1 when some are not installed, naming each on stderr.
	for _, ch := range chunks(pkgs) {
		res, err := b.run(ctx, "dpkg-query -L", "dpkg-query", append([]string{"--admindir=" + b.paths.AdminDir, "-L", "--"}, ch...)...)
		if err != nil {
			var ce *CommandError
			if !errors.As(err, &ce) || ce.ExitCode != 1 || !onlyNotInstalled(ce.Stderr) {
				return nil, fmt.Errorf("files of %s: %w", strings.Join(ch, ", "), err)
			}
		}
		out = append(out, ParseFileList(res.stdout)...)
	}
	return out, nil
}

// onlyNotInstalled reports whether dpkg-query -L's stderr only says that
// packages are not installed (and how to list a .deb instead).
func onlyNotInstalled(stderr string) bool {
	for line := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
		switch {
		case line == "…", // the start of a long message, cut (tailBuffer)
			strings.Contains(line, "is not installed"), strings.Contains(line, "no packages found"),
			strings.HasPrefix(line, "Use dpkg --contents"), strings.HasPrefix(line, "Use dpkg --info"):
		default:
			return false
		}
	}
	return true
}
