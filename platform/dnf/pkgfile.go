package dnf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patchring/patchring/platform/vercmp"
)

// InstalledPackage is a package in the rpm database.
type InstalledPackage struct {
	NEVRA
	InstallTime time.Time
}

// rpmQueryFormat is the query format of rpm -q that ParseRPMQuery reads.
const rpmQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}}:{}|\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n`

// ParseRPMQuery parses rpm -q output in the backend's query format: name,
// epoch, version, release, arch, install time, tab-separated, one package
// a line.
func ParseRPMQuery(out []byte) ([]InstalledPackage, error) {
	var pkgs []InstalledPackage
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("rpm query line %d: %d fields, want 6: %q", n, len(f), line)
		}
		if f[0] == "gpg-pubkey" {
			continue
		}
		evr := vercmp.RPMVersion{Epoch: f[1], Version: f[2], Release: f[3]}
		if evr.Epoch == "0" {
			evr.Epoch = ""
		}
		if _, err := vercmp.ParseRPM(evr.String()); err != nil || !validName(f[0]) || !validName(f[4]) {
			return nil, fmt.Errorf("rpm query line %d: malformed package %q", n, line)
		}
		p := InstalledPackage{NEVRA: NEVRA{Name: f[0], EVR: evr, Arch: f[4]}}
		if f[5] != "" && f[5] != "(none)" {
			sec, err := strconv.ParseInt(f[5], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("rpm query line %d: install time %q: %w", n, f[5], err)
			}
			p.InstallTime = time.Unix(sec, 0).UTC()
		}
		pkgs = append(pkgs, p)
	}
	sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, sc.Err()
}

// ReadPackageFile reads the name, [epoch:]version-release and
// architecture from the header of the .rpm file at path with the rpm tool
// (rpm -qp). Signatures and digests are not checked here: whoever calls
// it vouches for the file (the catalog signs its hash).
func ReadPackageFile(ctx context.Context, path string) (NEVRA, error) {
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		return NEVRA{}, fmt.Errorf("read package %s: the rpm tool reads .rpm headers and is not installed: %w", path, err)
	}
	if fi, err := os.Stat(path); err != nil {
		return NEVRA{}, fmt.Errorf("read package: %w", err)
	} else if !fi.Mode().IsRegular() {
		return NEVRA{}, fmt.Errorf("read package %s: not a regular file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return NEVRA{}, fmt.Errorf("read package %s: %w", path, err)
	}
	// A throwaway database: Debian's rpm would otherwise create ~/.rpmdb.
	db, err := os.MkdirTemp("", "patchring-rpmdb-")
	if err != nil {
		return NEVRA{}, fmt.Errorf("read package %s: %w", path, err)
	}
	defer os.RemoveAll(db)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, rpm, "--dbpath", db, "-qp", "--nosignature", "--nodigest", "--qf", rpmQueryFormat, "--", abs)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return NEVRA{}, fmt.Errorf("read package %s: is it an .rpm? %w", path, &CommandError{Command: "rpm -qp", ExitCode: code, Stderr: stderr.String(), Err: err})
	}
	pkgs, err := ParseRPMQuery(stdout.Bytes())
	if err != nil {
		return NEVRA{}, fmt.Errorf("read package %s: %w", path, err)
	}
	if len(pkgs) != 1 {
		return NEVRA{}, fmt.Errorf("read package %s: rpm read %d packages from it, want 1", path, len(pkgs))
	}
	return pkgs[0].NEVRA, nil
}
