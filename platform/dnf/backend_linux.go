package dnf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/platform/vercmp"
)

// Paths are the files the backend manages, on the host's file system
// (inside Root when there is one).
type Paths struct {
	Root     string // "/" for the running system
	CacheDir string // dnf's cachedir
	DBPath   string // rpm's database
	PlaceDir string // verified payloads waiting to be installed
	Lock     string // rpm's transaction lock
}

// Paths returns the backend's paths.
func (b *Backend) Paths() Paths { return b.paths }

func (b *Backend) setPaths(opts Options) error {
	root := opts.Root
	if root == "" {
		root = "/"
	}
	if !filepath.IsAbs(root) {
		return fmt.Errorf("root %q is not an absolute path", root)
	}
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	inRoot := func(p string) string { return filepath.Join(root, p) }
	cache, db, place := def(opts.CacheDir, "/var/cache/dnf"), def(opts.DBPath, "/var/lib/rpm"), def(opts.PlaceDir, "/var/cache/patchring/rpms")
	b.paths = Paths{Root: root, CacheDir: inRoot(cache), DBPath: inRoot(db), PlaceDir: inRoot(place), Lock: inRoot(filepath.Join(db, ".rpm.lock"))}
	rpmName := def(opts.RPMPath, "rpm")
	rpm, err := exec.LookPath(rpmName)
	if err != nil {
		return fmt.Errorf("%w: rpm: %v", ErrNotFound, err)
	}
	b.rpm = rpm
	b.rpmArgs = []string{"--dbpath", db}
	if opts.Root != "" {
		b.rpmArgs = append([]string{"--root", root}, b.rpmArgs...)
		b.global = append(b.global, "--installroot", root)
	}
	b.global = append(b.global, opts.Args...)
	return nil
}

// withGlobal puts the global options after the command's name (and the
// subcommand of updateinfo and needs-restarting-like two-word commands).
func (b *Backend) withGlobal(args []string) []string {
	if len(b.global) == 0 || len(args) == 0 {
		return args
	}
	n := 1
	if args[0] == "updateinfo" && len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		n = 2
	}
	out := append([]string{}, args[:n]...)
	out = append(out, b.global...)
	return append(out, args[n:]...)
}

// runRPM runs rpm with the backend's root and database.
func (b *Backend) runRPM(ctx context.Context, op string, args ...string) ([]byte, []byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.rpm, append(append([]string{}, b.rpmArgs...), args...)...)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	b.log.DebugContext(ctx, "ran rpm", "op", op, "args", args, "err", err)
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return stdout.Bytes(), stderr.Bytes(), &CommandError{Command: op, ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), stderr.Bytes(), nil
}

// Refresh downloads the repositories' metadata; dnf checks repomd.xml's
// signature (repo_gpgcheck) and every file's checksum against it.
func (b *Backend) Refresh(ctx context.Context) error {
	if _, _, err := b.run(ctx, "dnf makecache", nil, "makecache", "--refresh", "-y"); err != nil {
		return fmt.Errorf("refresh dnf metadata: %w", err)
	}
	return nil
}

// Installed lists the rpm database (gpg-pubkey entries, which are keys,
// left out), sorted by name.
func (b *Backend) Installed(ctx context.Context) ([]InstalledPackage, error) {
	out, _, err := b.runRPM(ctx, "rpm -qa", "-qa", "--qf", rpmQueryFormat)
	if err != nil {
		return nil, fmt.Errorf("list installed packages: %w", err)
	}
	pkgs, err := ParseRPMQuery(out)
	if err != nil {
		return nil, fmt.Errorf("list installed packages: %w", err)
	}
	return pkgs, nil
}

// InstalledVersion is pkg's installed [epoch:]version-release, "" when it
// is not installed. With several installed (installonly packages such as
// kernels, or an interrupted transaction) it is the newest.
func (b *Backend) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	if !validName(pkg) || strings.HasPrefix(pkg, "-") {
		return "", fmt.Errorf("installed version: invalid package name %q", pkg)
	}
	out, _, err := b.runRPM(ctx, "rpm -q", "-q", "--qf", rpmQueryFormat, "--", pkg)
	if err != nil {
		if bytes.Contains(out, []byte("is not installed")) {
			return "", nil
		}
		var ce *CommandError
		if errors.As(err, &ce) && ce.ExitCode == 1 && strings.TrimSpace(ce.Stderr) == "" {
			return "", nil
		}
		return "", fmt.Errorf("installed version of %s: %w", pkg, err)
	}
	pkgs, err := ParseRPMQuery(out)
	if err != nil {
		return "", fmt.Errorf("installed version of %s: %w", pkg, err)
	}
	var best *InstalledPackage
	for i := range pkgs {
		if best == nil || vercmp.CompareRPM(pkgs[i].EVR, best.EVR) > 0 {
			best = &pkgs[i]
		}
	}
	if best == nil {
		return "", nil
	}
	return best.EVR.String(), nil
}

// Duplicates lists the packages installed at more than one version
// (installonly packages such as kernel aside): what an interrupted rpm
// transaction leaves.
func (b *Backend) Duplicates(ctx context.Context) ([]string, error) {
	pkgs, err := b.Installed(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string][]string{}
	for _, p := range pkgs {
		if installOnly(p.Name) {
			continue
		}
		k := p.Name + "." + p.Arch
		seen[k] = append(seen[k], p.EVR.String())
	}
	var out []string
	for k, vs := range seen {
		if len(vs) > 1 {
			out = append(out, fmt.Sprintf("%s installed at %s (an interrupted rpm transaction)", k, strings.Join(vs, " and ")))
		}
	}
	sort.Strings(out)
	return out, nil
}

// installOnly reports dnf's default installonlypkgs.
func installOnly(name string) bool {
	switch name {
	case "kernel", "kernel-PAE", "installonlypkg(kernel)", "installonlypkg(kernel-module)", "installonlypkg(vm)", "multiversion(kernel)":
		return true
	}
	return strings.HasPrefix(name, "kernel-core") || strings.HasPrefix(name, "kernel-modules")
}

// RemoveDuplicates finishes what an interrupted rpm transaction left: of
// a package installed at two versions (rpm had added the new one and not
// yet erased the old), the older is erased with rpm, as the upgrade would
// have (its %preun and %postun run with one instance left; files the newer
// version owns stay). dnf's own `remove --duplicates` also reinstalls the
// newest from a repository, which a placed file is not in.
func (b *Backend) RemoveDuplicates(ctx context.Context) error {
	pkgs, err := b.Installed(ctx)
	if err != nil {
		return fmt.Errorf("remove duplicates: %w", err)
	}
	groups := map[string][]InstalledPackage{}
	for _, p := range pkgs {
		if !installOnly(p.Name) {
			groups[p.Name+"."+p.Arch] = append(groups[p.Name+"."+p.Arch], p)
		}
	}
	var older []string
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		sort.Slice(g, func(i, j int) bool { return vercmp.CompareRPM(g[i].EVR, g[j].EVR) < 0 })
		for _, p := range g[:len(g)-1] {
			older = append(older, p.NEVRA.String())
		}
	}
	if len(older) == 0 {
		return nil
	}
	sort.Strings(older)
	if _, _, err := b.runRPM(ctx, "rpm -e (older duplicates)", append([]string{"-e", "--nodeps", "--"}, older...)...); err != nil {
		return fmt.Errorf("remove duplicates %v: %w", older, err)
	}
	return nil
}

// Payload is a package file a repository offers, with what its signed
// metadata says about it.
type Payload struct {
	NEVRA
	Repo   string
	URL    string
	Size   int64
	SHA256 string
}

// ErrNoPayload means no repository offers the package.
var ErrNoPayload = errors.New("no repository offers the package")

// Payloads returns the payload of each package spec ("name-evr",
// "name-evr.arch"), from the metadata dnf verified at its last refresh:
// the URL dnf would download from, and the size and SHA-256 recorded in
// the repository's primary metadata, whose own checksum is in the signed
// repomd.xml. A spec that matches several architectures gives the one
// installed (else the first).
func (b *Backend) Payloads(ctx context.Context, specs []string) ([]Payload, error) {
	cur, _, err := b.PayloadsAndPrevious(ctx, specs, nil)
	return cur, err
}

// PayloadsAndPrevious is Payloads for specs that also looks up, in the
// same dnf run, the payloads of previous: installed versions a rollback
// would reinstall. A previous version no repository offers any more is
// left out of prev without an error.
func (b *Backend) PayloadsAndPrevious(ctx context.Context, specs, previous []string) (cur, prev []Payload, err error) {
	all := append(slices.Clip(specs), previous...)
	if len(all) == 0 {
		return nil, nil, nil
	}
	for _, s := range all {
		if s == "" || strings.HasPrefix(s, "-") || !validName(s) {
			return nil, nil, fmt.Errorf("payloads: invalid package spec %q", s)
		}
	}
	out, _, err := b.run(ctx, "dnf repoquery --location", nil, append([]string{"repoquery", "-C", "-q", "--location", "--"}, all...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("payloads: %w", err)
	}
	repos, err := b.repoMetadata()
	if err != nil {
		return nil, nil, fmt.Errorf("payloads: %w", err)
	}
	var found []Payload
	for _, line := range strings.Split(string(out), "\n") {
		url := strings.TrimSpace(line)
		if url == "" {
			continue
		}
		p, err := matchURL(url, repos)
		if err != nil {
			return nil, nil, fmt.Errorf("payloads: %w", err)
		}
		found = append(found, p)
	}
	pick := func(spec string) *Payload {
		var best *Payload
		for i := range found {
			p := &found[i]
			if !specMatches(spec, p.NEVRA) {
				continue
			}
			if best == nil {
				best = p
			} else if v, _ := b.InstalledArch(ctx, p.Name); v == p.Arch {
				best = p
			}
		}
		return best
	}
	for _, spec := range specs {
		p := pick(spec)
		if p == nil {
			return nil, nil, fmt.Errorf("payloads: %s: %w", spec, ErrNoPayload)
		}
		cur = append(cur, *p)
	}
	for _, spec := range previous {
		if p := pick(spec); p != nil {
			prev = append(prev, *p)
		}
	}
	return cur, prev, nil
}

// InstalledArch is the architecture of the installed pkg, "" if none.
func (b *Backend) InstalledArch(ctx context.Context, pkg string) (string, error) {
	out, _, err := b.runRPM(ctx, "rpm -q", "-q", "--qf", "%{ARCH}\n", "--", pkg)
	if err != nil {
		return "", nil
	}
	a, _, _ := strings.Cut(string(out), "\n")
	return a, nil
}

func specMatches(spec string, n NEVRA) bool {
	full := n.Name + "-" + n.EVR.String()
	noEpoch := n.Name + "-" + n.EVR.Version + "-" + n.EVR.Release
	for _, s := range []string{full, noEpoch} {
		if spec == s || spec == s+"."+n.Arch || spec == n.Name {
			return true
		}
	}
	return false
}

// matchURL finds the primary entry a URL dnf printed points at: the
// location is the URL's end. Two repositories offering the same NEVRA at
// the same location with different contents is an error.
func matchURL(url string, repos map[string][]PrimaryPackage) (Payload, error) {
	var got *Payload
	for repo, pkgs := range repos {
		for _, p := range pkgs {
			loc := strings.TrimPrefix(p.Location, "/")
			if !strings.HasSuffix(url, "/"+loc) {
				continue
			}
			if p.Base != "" && !strings.HasPrefix(url, strings.TrimSuffix(p.Base, "/")+"/") {
				continue
			}
			if p.ChecksumType != "sha256" {
				return Payload{}, fmt.Errorf("%s: the repository %s gives a %s checksum; patchring needs sha256", url, repo, p.ChecksumType)
			}
			c := Payload{NEVRA: p.NEVRA(), Repo: repo, URL: url, Size: p.Size, SHA256: p.Checksum}
			if got != nil && got.SHA256 != c.SHA256 {
				return Payload{}, fmt.Errorf("%s: repositories %s and %s offer different files at this location", url, got.Repo, repo)
			}
			got = &c
		}
	}
	if got == nil {
		return Payload{}, fmt.Errorf("%s: not in any repository's verified metadata", url)
	}
	return *got, nil
}

type primaryCache struct {
	repomdSum string
	pkgs      []PrimaryPackage
}

var cacheDirRE = regexp.MustCompile(`^(.+)-[0-9a-f]{16}$`)

// repoMetadata reads each repository's primary metadata from dnf's cache,
// checked against the cached repomd.xml (which dnf verified against its
// signature when it downloaded it), by repository ID.
func (b *Backend) repoMetadata() (map[string][]PrimaryPackage, error) {
	mds, err := filepath.Glob(filepath.Join(b.paths.CacheDir, "*", "repodata", "repomd.xml"))
	if err != nil {
		return nil, err
	}
	res := map[string][]PrimaryPackage{}
	for _, md := range mds {
		repoDir := filepath.Dir(filepath.Dir(md))
		m := cacheDirRE.FindStringSubmatch(filepath.Base(repoDir))
		if m == nil {
			continue
		}
		repo := m[1]
		data, err := os.ReadFile(md)
		if err != nil {
			return nil, err
		}
		sum := sha256Hex(data)
		b.mu.Lock()
		c, ok := b.primary[md]
		b.mu.Unlock()
		if ok && c.repomdSum == sum {
			res[repo] = c.pkgs
			continue
		}
		entries, err := ParseRepomd(data)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		var primary *RepomdData
		for i := range entries {
			if entries[i].Type == "primary" {
				primary = &entries[i]
			}
		}
		if primary == nil {
			return nil, fmt.Errorf("repository %s: repomd.xml lists no primary metadata", repo)
		}
		raw, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(primary.Location)))
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		if err := CheckDigest(raw, primary.ChecksumType, primary.Checksum); err != nil {
			return nil, fmt.Errorf("repository %s: cached %s: %w", repo, primary.Location, err)
		}
		pkgs, err := ParsePrimary(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		b.mu.Lock()
		b.primary[md] = primaryCache{repomdSum: sum, pkgs: pkgs}
		b.mu.Unlock()
		res[repo] = pkgs
	}
	return res, nil
}

// PackageFile reads the NEVRA of an .rpm file's header.
func (b *Backend) PackageFile(ctx context.Context, path string) (NEVRA, error) {
	out, _, err := b.runRPM(ctx, "rpm -qp", "-qp", "--nosignature", "--nodigest", "--qf", rpmQueryFormat, "--", path)
	if err != nil {
		return NEVRA{}, fmt.Errorf("read package %s: %w", filepath.Base(path), err)
	}
	pkgs, err := ParseRPMQuery(out)
	if err != nil || len(pkgs) != 1 {
		return NEVRA{}, fmt.Errorf("read package %s: not one package (%v)", filepath.Base(path), err)
	}
	return pkgs[0].NEVRA, nil
}

// ErrPayloadMismatch means a payload is not the package it should be.
var ErrPayloadMismatch = errors.New("payload is not the expected package")

// ErrNotPlaced means no verified payload was placed for a package.
var ErrNotPlaced = errors.New("no verified payload placed for the package")

// Place checks that the staged file is name at evr (any architecture if
// arch is "") and moves it into PlaceDir; it returns the placed path.
func (b *Backend) Place(ctx context.Context, staged, name, evr, arch string) (string, error) {
	got, err := b.PackageFile(ctx, staged)
	if err != nil {
		return "", fmt.Errorf("place %s %s: %w", name, evr, err)
	}
	want, err := vercmp.ParseRPM(evr)
	if err != nil {
		return "", fmt.Errorf("place %s %s: %w", name, evr, err)
	}
	if got.Name != name || vercmp.CompareRPM(got.EVR, want) != 0 || (arch != "" && got.Arch != arch) {
		return "", fmt.Errorf("place %s %s: the payload is %s: %w", name, evr, got, ErrPayloadMismatch)
	}
	if err := os.MkdirAll(b.paths.PlaceDir, 0o755); err != nil {
		return "", fmt.Errorf("place %s %s: %w", name, evr, err)
	}
	dst := filepath.Join(b.paths.PlaceDir, got.String()+".rpm")
	if err := os.Rename(staged, dst); err != nil {
		return "", fmt.Errorf("place %s %s: %w", name, evr, err)
	}
	return dst, nil
}

// Placed returns the placed payload of name at evr.
func (b *Backend) Placed(name, evr string) (string, bool) {
	want, err := vercmp.ParseRPM(evr)
	if err != nil {
		return "", false
	}
	ents, err := os.ReadDir(b.paths.PlaceDir)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		n, err := ParseNEVRA(strings.TrimSuffix(e.Name(), ".rpm"))
		if err == nil && n.Name == name && vercmp.CompareRPM(n.EVR, want) == 0 {
			return filepath.Join(b.paths.PlaceDir, e.Name()), true
		}
	}
	return "", false
}

// ScriptletError is a transaction in which a package's scriptlet failed.
// rpm goes on after a failing %post (the package stays installed), so
// dnf reports success; the backend does not.
type ScriptletError struct {
	Scriptlet string // e.g. "%post"
	Package   string // NEVRA
	Output    string
}

func (e *ScriptletError) Error() string {
	return fmt.Sprintf("%s scriptlet of %s failed: %s", e.Scriptlet, e.Package, strings.TrimSpace(e.Output))
}

var scriptletRE = regexp.MustCompile(`(%[a-z]+)\(([^)\s]+)\) scriptlet failed`)

// Apply installs (upgrades, downgrades) targets and removes remove in one
// dnf transaction. Targets are .rpm paths or package specs; removals
// never take other packages with them. With cacheOnly no metadata is
// downloaded (and with only placed files, nothing at all).
func (b *Backend) Apply(ctx context.Context, targets, remove []string, cacheOnly bool) error {
	for _, s := range append(append([]string{}, targets...), remove...) {
		if s == "" || strings.HasPrefix(s, "-") || strings.ContainsAny(s, "\n\r") {
			return fmt.Errorf("apply: invalid package %q", s)
		}
	}
	var args []string
	switch {
	case len(targets) == 0 && len(remove) == 0:
		return nil
	case len(remove) == 0:
		args = []string{"install", "-y"}
	case len(targets) == 0:
		args = []string{"remove", "-y", "--setopt=clean_requirements_on_remove=False"}
	default:
		// One transaction for both: dnf shell.
		return b.applyShell(ctx, targets, remove, cacheOnly)
	}
	if cacheOnly {
		args = append(args, "-C")
	}
	args = append(append(args, "--"), targets...)
	args = append(args, remove...)
	return b.transaction(ctx, "dnf "+args[0], args)
}

// InstallVerified installs (upgrades, downgrades) .rpm files whose bytes
// the caller verified against a signature of its own (the catalog's TUF
// targets sign each payload's SHA-256): dnf does not ask them for an rpm
// signature of a key it knows (localpkg_gpgcheck off), while packages it
// resolves from repositories for them are gpg-checked as configured.
func (b *Backend) InstallVerified(ctx context.Context, files []string) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if !filepath.IsAbs(f) || !strings.HasSuffix(f, ".rpm") || strings.ContainsAny(f, "\n\r") {
			return fmt.Errorf("install verified files: %q is not an absolute path of an .rpm file", f)
		}
	}
	args := append([]string{"install", "-y", "--setopt=localpkg_gpgcheck=False", "--"}, files...)
	return b.transaction(ctx, "dnf install", args)
}

func (b *Backend) applyShell(ctx context.Context, targets, remove []string, cacheOnly bool) error {
	f, err := os.CreateTemp("", "patchring-dnf-shell-*")
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	defer os.Remove(f.Name())
	var sb strings.Builder
	sb.WriteString("config clean_requirements_on_remove False\n")
	for _, t := range targets {
		fmt.Fprintf(&sb, "install %s\n", t)
	}
	for _, r := range remove {
		fmt.Fprintf(&sb, "remove %s\n", r)
	}
	sb.WriteString("run\n")
	if _, err := f.WriteString(sb.String()); err != nil {
		f.Close()
		return fmt.Errorf("apply: %w", err)
	}
	f.Close()
	args := []string{"shell", "-y"}
	if cacheOnly {
		args = append(args, "-C")
	}
	// dnf shell exits 0 whatever happened: the caller verifies the
	// versions (the engine's verify step).
	return b.transaction(ctx, "dnf shell", append(args, f.Name()))
}

func (b *Backend) transaction(ctx context.Context, op string, args []string) error {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.path, b.withGlobal(args)...)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	b.log.DebugContext(ctx, "ran dnf", "op", op, "args", args, "err", err)
	all := stdout.String() + stderr.String()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		msg := stderr.String()
		if len(msg) > 4096 {
			msg = "…" + msg[len(msg)-4096:]
		}
		return fmt.Errorf("%s: %w", op, &CommandError{Command: op, ExitCode: code, Stderr: msg, Err: err})
	}
	if m := scriptletRE.FindStringSubmatch(all); m != nil {
		return fmt.Errorf("%s: %w", op, &ScriptletError{Scriptlet: m[1], Package: m[2], Output: tail(all, 2048)})
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Simulate returns what installing targets (files or specs) would change,
// from dnf's transaction table (--assumeno), without changing anything.
func (b *Backend) Simulate(ctx context.Context, targets []string, remove []string) ([]TxPackage, error) {
	for _, s := range append(append([]string{}, targets...), remove...) {
		if s == "" || strings.HasPrefix(s, "-") {
			return nil, fmt.Errorf("simulate: invalid package %q", s)
		}
	}
	var args []string
	switch {
	case len(targets) == 0 && len(remove) == 0:
		return nil, nil
	case len(remove) == 0:
		args = append([]string{"install", "-C", "--assumeno", "--"}, targets...)
	case len(targets) == 0:
		args = append([]string{"remove", "-C", "--assumeno", "--setopt=clean_requirements_on_remove=False", "--"}, remove...)
	default:
		return nil, errors.New("simulate: installing and removing in one transaction is not simulated; simulate each")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.path, b.withGlobal(args)...)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	pkgs, nothing, perr := ParseTransaction(append(stdout.Bytes(), stderr.Bytes()...))
	if perr != nil {
		msg := strings.TrimSpace(tail(stderr.String(), 4096))
		if err != nil && msg != "" {
			return nil, fmt.Errorf("simulate: dnf %s: %v: %s", args[0], err, msg)
		}
		return nil, fmt.Errorf("simulate: %w", perr)
	}
	if nothing {
		return nil, nil
	}
	return pkgs, nil
}

// LockedError is the rpm database lock held by another process.
type LockedError struct {
	Path string
	PID  int // 0 when not visible
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("rpm lock %s is held by process %d", e.Path, e.PID)
	}
	return fmt.Sprintf("rpm lock %s is held by another process", e.Path)
}

// ErrLocked matches *LockedError.
var ErrLocked = errors.New("rpm database locked")

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// LockHolder returns who holds rpm's transaction lock, or nil. rpm holds
// it as an fcntl write lock; F_OFD_GETLK sees it without taking it.
func (b *Backend) LockHolder() (*LockedError, error) {
	f, err := os.Open(b.paths.Lock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check rpm lock: %w", err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return nil, fmt.Errorf("check rpm lock %s: %w", b.paths.Lock, err)
	}
	if lk.Type == unix.F_UNLCK {
		return nil, nil
	}
	pid := 0
	if lk.Pid > 0 {
		pid = int(lk.Pid)
	}
	return &LockedError{Path: b.paths.Lock, PID: pid}, nil
}

// WaitLock waits up to timeout for rpm's lock to be free.
func (b *Backend) WaitLock(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		held, err := b.LockHolder()
		if err != nil {
			return err
		}
		if held == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s: %w", timeout, held)
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// FreeSpace is the free space where dnf keeps packages and the root.
func (b *Backend) FreeSpace() (uint64, error) {
	var least uint64
	for i, p := range []string{b.paths.Root, existingParent(b.paths.CacheDir), existingParent(b.paths.PlaceDir)} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return 0, fmt.Errorf("free space of %s: %w", p, err)
		}
		free := st.Bavail * uint64(st.Bsize)
		if i == 0 || free < least {
			least = free
		}
	}
	return least, nil
}

func existingParent(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
}

// NeedsReboot asks `dnf needs-restarting -r` (dnf-plugins-core) whether
// core packages (kernel, glibc, systemd, ...) changed since boot, and
// which. It returns an error when the plugin is missing.
func (b *Backend) NeedsReboot(ctx context.Context) (bool, []string, error) {
	out, code, err := b.run(ctx, "dnf needs-restarting -r", []int{1}, "needs-restarting", "-C", "-r")
	if err != nil {
		return false, nil, fmt.Errorf("needs-restarting: %w", err)
	}
	return code == 1, ParseNeedsRestarting(out), nil
}

// NeedsRestartServices asks `dnf needs-restarting -s` which systemd
// services use files of updated packages.
func (b *Backend) NeedsRestartServices(ctx context.Context) ([]string, error) {
	out, _, err := b.run(ctx, "dnf needs-restarting -s", nil, "needs-restarting", "-C", "-s")
	if err != nil {
		return nil, fmt.Errorf("needs-restarting: %w", err)
	}
	var svcs []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, ".service") && validName(l) {
			svcs = append(svcs, l)
		}
	}
	return svcs, nil
}

// ParseNeedsRestarting returns the packages `needs-restarting -r` lists
// ("  * glibc").
func ParseNeedsRestarting(out []byte) []string {
	var pkgs []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if name, ok := strings.CutPrefix(l, "* "); ok && validName(strings.TrimSpace(name)) {
			pkgs = append(pkgs, strings.TrimSpace(name))
		}
	}
	return pkgs
}

// Files returns the paths (in the system's root) of the files installed
// packages ship, from the rpm database (rpm -ql); a package that is not
// installed has none.
func (b *Backend) Files(ctx context.Context, pkgs ...string) ([]string, error) {
	var files []string
	for _, pkg := range pkgs {
		if !validName(pkg) || strings.HasPrefix(pkg, "-") {
			return nil, fmt.Errorf("files: invalid package name %q", pkg)
		}
		out, _, err := b.runRPM(ctx, "rpm -ql", "-ql", "--", pkg)
		if err != nil {
			var ce *CommandError
			if bytes.Contains(out, []byte("is not installed")) || (errors.As(err, &ce) && ce.ExitCode == 1 && strings.TrimSpace(ce.Stderr) == "") {
				continue
			}
			return nil, fmt.Errorf("files of %s: %w", pkg, err)
		}
		files = append(files, parseFileList(out)...)
	}
	return files, nil
}

// parseFileList reads rpm -ql's output: one absolute path a line; rpm's
// "(contains no files)" and anything not absolute are left out.
func parseFileList(out []byte) []string {
	var files []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") {
			files = append(files, l)
		}
	}
	return files
}
