package apttest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A Chroot is a minimal Debian system (Debian 12 by default) built by
// mmdebstrap, in which the real apt-get and dpkg of that system run, and
// with them maintainer scripts that expect a real system: absolute paths,
// adduser, update-alternatives, invoke-rc.d, dpkg --compare-versions.
//
// Building the system downloads about 50 MB from a Debian mirror (the
// packages and the suite's indices) and takes 30 to 60 seconds, so it is
// done once per machine: RootImage keeps the result as a tarball in
// ChrootOptions.CacheDir (os.TempDir() by default), named
// patchring-mmdebstrap-cache-<hash of the options>.tar, and every later
// NewChroot, in this or another test process, extracts that tarball (about
// 125 MB) into a new directory: in /dev/shm when it is a roomy tmpfs
// (a tenth of a second), else in os.TempDir() (a few seconds). To build
// it again (say, to pick up a Debian point release), delete it:
//
//	rm -f "${TMPDIR:-/tmp}"/patchring-mmdebstrap-cache-*
//
// Systems left behind by a test process that died before its cleanup are
// removed by the next NewChroot.
//
// The mirror is the one the host's apt uses for the suite (read from
// /etc/apt/sources.list and /etc/apt/sources.list.d/), unless the
// environment variable PATCHRING_DEBIAN_MIRROR names another. When the
// mirror cannot be reached, RootImage fails and says which mirror it tried
// and where it found it.
//
// Commands enter the system with the runner in BinDir: in a private mount
// namespace of their own (unshare --mount --propagation private) it mounts
// /proc, a /dev with only null, zero, full, random, urandom and tty, and
// the root directory once more at its own host path inside the root, then
// chroots. Every mount therefore lives and dies with the command: nothing
// is ever mounted on the host, and ending the process ends the mounts. The
// second mount is what lets the host and the commands inside share paths:
// Root/var/lib/dpkg means the same directory on the host and inside, so
// the apt configuration (AptConfig: Dir is Root, dpkg runs with --root=Root
// and chroots into it for maintainer scripts, as on a real system with
// DPKG_ROOT empty) serves apt-get inside and the file operations of a
// platform/apt Backend on the host (placing payloads, reading dpkg's
// locks, free space) alike.
//
// BinDir also holds wrappers named apt-get, apt-cache, apt-config,
// apt-mark, dpkg and dpkg-query that run the system's own tool through the
// runner. RouteTools puts BinDir first in the process's PATH for one test,
// so that a platform/apt Backend made with Options{AptConfig: AptConfig}
// runs every tool inside the system. dpkg-deb, which only reads .deb files
// the Backend names by host paths, stays the host's. Paths handed to the
// tools inside (apt-get install ./file.deb, dpkg -i) must lie under Root.
//
// The root's apt sources are emptied after extraction: tests add their own
// repositories (AddRepo; an apttest.Repo on 127.0.0.1 is reachable because
// the commands share the host's network namespace) and never reach
// Debian's mirror again. /usr/sbin/policy-rc.d forbids starting services,
// and /etc/patchring-chroot marks the system as a test root (see
// ChrootGuard).
type Chroot struct {
	// Root is the system's root directory on the host (absolute, clean).
	Root string
	// AdminDir is dpkg's database, Root/var/lib/dpkg.
	AdminDir string
	// AptConfig is the APT_CONFIG file, Root/etc/apt/patchring-chroot.conf.
	AptConfig string
	// Arch is the system's architecture.
	Arch string
	// BinDir holds the runner (chroot-run) and the tool wrappers; it is
	// outside Root.
	BinDir string
	// Image is the cached tarball the system was extracted from.
	Image string

	dir string
}

// ChrootOptions configures RootImage and NewChroot. The zero value builds
// Debian 12 (bookworm), variant minbase plus adduser, for DefaultArch.
type ChrootOptions struct {
	// Suite is the Debian suite; default "bookworm".
	Suite string
	// Variant is mmdebstrap's variant; default "minbase" (Priority
	// required and apt).
	Variant string
	// Include lists packages installed besides the variant's; nil means
	// DefaultChrootInclude.
	Include []string
	// Arch defaults to DefaultArch.
	Arch string
	// Mirror is the Debian mirror's URL; default $PATCHRING_DEBIAN_MIRROR,
	// else the host's apt source for Suite.
	Mirror string
	// CacheDir keeps the tarball between runs; default os.TempDir().
	CacheDir string
	// TempDir is where NewChroot extracts systems; default /dev/shm when
	// it is a roomy tmpfs that allows executables, else os.TempDir().
	TempDir string
}

// DefaultChrootInclude is what a Chroot has besides mmdebstrap's minbase:
// adduser, which maintainer scripts of system services call.
var DefaultChrootInclude = []string{"adduser"}

// MirrorEnv names the environment variable that overrides the mirror.
const MirrorEnv = "PATCHRING_DEBIAN_MIRROR"

// chrootRecipe changes whenever the way the image is built changes, so
// that an older cached tarball is not reused.
const chrootRecipe = "patchring-chroot-1"

// chrootDpkgOpts keep documentation out of the image (as Debian's slim
// container images do): smaller tarballs, faster extraction.
var chrootDpkgOpts = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/locale/*",
	"path-include=/usr/share/locale/locale.alias",
}

// ChrootGuard is shell text for the top of a test package's maintainer
// script: it stops the script unless it runs inside a Chroot, so that a
// script written for a real system (absolute paths, adduser) can never
// change the host, whatever goes wrong.
const ChrootGuard = `if [ ! -e /etc/patchring-chroot ]; then
	echo "refusing to run outside a patchring test root (no /etc/patchring-chroot)" >&2
	exit 1
fi
`

func (o ChrootOptions) withDefaults() ChrootOptions {
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if o.Variant == "" {
		o.Variant = "minbase"
	}
	if o.Include == nil {
		o.Include = DefaultChrootInclude
	}
	o.Include = slices.Sorted(slices.Values(o.Include))
	o.Include = slices.Compact(o.Include)
	if o.Arch == "" {
		o.Arch = DefaultArch
	}
	if o.CacheDir == "" {
		o.CacheDir = os.TempDir()
	}
	return o
}

// cacheKey identifies an image: everything that changes what mmdebstrap
// builds.
func (o ChrootOptions) cacheKey(mirror string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%s\n%s\n", chrootRecipe, o.Suite, o.Variant, o.Arch,
		strings.TrimSuffix(mirror, "/"), strings.Join(o.Include, ","), strings.Join(chrootDpkgOpts, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// cachePath is the image's tarball for the options and mirror.
func (o ChrootOptions) cachePath(mirror string) string {
	return filepath.Join(o.CacheDir, "patchring-mmdebstrap-cache-"+o.cacheKey(mirror)+".tar")
}

// aptSource is one entry of apt's sources, in either format.
type aptSource struct {
	File       string // file and line (one-line) or paragraph start (deb822)
	Line       int
	Types      []string
	URIs       []string
	Suites     []string
	Components []string
}

// parseSources parses an apt sources file: deb822 when name ends in
// ".sources", else the one-line format. Disabled entries (Enabled: no)
// are left out; malformed ones are errors naming the line.
func parseSources(name string, data []byte) ([]aptSource, error) {
	if strings.HasSuffix(name, ".sources") {
		return parseDeb822Sources(name, data)
	}
	return parseOneLineSources(name, data)
}

func parseOneLineSources(name string, data []byte) ([]aptSource, error) {
	var res []aptSource
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		typ := f[0]
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			end := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, "]") })
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: options in [ ] are not closed", name, n)
			}
			f = f[end+1:]
		}
		if typ != "deb" && typ != "deb-src" {
			return nil, fmt.Errorf("%s:%d: unknown type %q (want deb or deb-src)", name, n, typ)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: want a URI and a suite after %q", name, n, typ)
		}
		res = append(res, aptSource{File: name, Line: n, Types: []string{typ}, URIs: []string{f[0]},
			Suites: []string{f[1]}, Components: slices.Clone(f[2:])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

func parseDeb822Sources(name string, data []byte) ([]aptSource, error) {
	var res []aptSource
	fields := map[string]string{}
	start, last := 0, ""
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		defer clear(fields)
		if strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no") {
			return nil
		}
		s := aptSource{File: name, Line: start, Types: strings.Fields(fields["types"]), URIs: strings.Fields(fields["uris"]),
			Suites: strings.Fields(fields["suites"]), Components: strings.Fields(fields["components"])}
		if len(s.Types) == 0 || len(s.URIs) == 0 || len(s.Suites) == 0 {
			return fmt.Errorf("%s:%d: entry without Types, URIs or Suites", name, start)
		}
		res = append(res, s)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case line == "":
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
			continue
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("%s:%d: continuation line without a field", name, n)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want Field: value, got %q", name, n, line)
		}
		if len(fields) == 0 {
			start = n
		}
		last = strings.ToLower(k)
		fields[last] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return res, nil
}

// mirrorFor returns the URI of the first binary source carrying suite
// with the main component, over http, https or file.
func mirrorFor(sources []aptSource, suite string) (uri string, src aptSource, ok bool) {
	for _, s := range sources {
		if !slices.Contains(s.Types, "deb") || !slices.Contains(s.Suites, suite) || !slices.Contains(s.Components, "main") {
			continue
		}
		for _, u := range s.URIs {
			p, err := url.Parse(u)
			if err != nil {
				continue
			}
			switch p.Scheme {
			case "http", "https", "file":
				return u, s, true
			}
		}
	}
	return "", aptSource{}, false
}

// hostSourceFiles lists apt's sources files in the order apt reads them.
func hostSourceFiles(etcApt string) []string {
	files := []string{filepath.Join(etcApt, "sources.list")}
	entries, _ := os.ReadDir(filepath.Join(etcApt, "sources.list.d"))
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) {
			files = append(files, filepath.Join(etcApt, "sources.list.d", n))
		}
	}
	return files
}

// chooseMirror picks the mirror: the option, the environment, or the
// host's apt sources (under etcApt). from says where it came from.
func chooseMirror(o ChrootOptions, etcApt string) (mirror, from string, err error) {
	if o.Mirror != "" {
		return o.Mirror, "ChrootOptions.Mirror", nil
	}
	if m := os.Getenv(MirrorEnv); m != "" {
		return m, "$" + MirrorEnv, nil
	}
	files := hostSourceFiles(etcApt)
	var all []aptSource
	var problems []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		s, err := parseSources(f, data)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		all = append(all, s...)
	}
	if m, s, ok := mirrorFor(all, o.Suite); ok {
		return m, fmt.Sprintf("%s:%d", s.File, s.Line), nil
	}
	msg := fmt.Sprintf("no apt source of type deb for suite %s with component main in %s", o.Suite, strings.Join(files, ", "))
	if len(problems) > 0 {
		msg += " (" + strings.Join(problems, "; ") + ")"
	}
	return "", "", fmt.Errorf("%s: set %s to a Debian mirror's URL", msg, MirrorEnv)
}

// Runner is the runner's path: Runner() name args... runs name inside the
// root, e.g. as a policy's health check.
func (c *Chroot) Runner() string { return filepath.Join(c.BinDir, "chroot-run") }

// Path joins rel to Root.
func (c *Chroot) Path(rel string) string { return filepath.Join(c.Root, rel) }

// AddSource writes line to etc/apt/sources.list.d/<name>.list in the root.
func (c *Chroot) AddSource(name, line string) error {
	p := filepath.Join(c.Root, "etc/apt/sources.list.d", name+".list")
	if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
		return fmt.Errorf("add source %s: %w", name, err)
	}
	return nil
}

// AddRepo adds r to the root's sources under name.
func (c *Chroot) AddRepo(name string, r *Repo) error { return c.AddSource(name, r.SourcesLine()) }

// MustAddRepo is AddRepo for tests.
func (c *Chroot) MustAddRepo(t TB, name string, r *Repo) {
	t.Helper()
	if err := c.AddRepo(name, r); err != nil {
		t.Fatalf("%v", err)
	}
}

// EnvTB is the part of testing.TB that RouteTools needs.
type EnvTB interface {
	TB
	Setenv(key, value string)
}
