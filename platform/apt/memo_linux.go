package apt

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/patchring/patchring/platform/dpkgstatus"
)

// The engine asks the backend what is installed many times a cycle (once
// per package of a transaction, before and after), and asks apt what is
// upgradable every check. Each question used to start dpkg-query or
// apt-cache, and those processes were most of an idle agent's CPU. The
// answers depend only on files (dpkg's database; apt's configuration,
// sources, preferences and lists), so the backend keeps the last answer
// with a stamp of those files and asks again only when the stamp changes.
//
// A stamp is taken before the files are read: a change during the read
// makes the next stamp differ, so a memo is never newer than its stamp
// claims and never outlives a change.

// memo holds one answer and the stamp of the files it was computed from.
type memo[T any] struct {
	mu    sync.Mutex
	stamp string
	val   T
	ok    bool
}

// get returns the kept answer when stamp matches, else computes a new one
// with fill and keeps it. Errors are not kept.
func (m *memo[T]) get(stamp string, fill func() (T, error)) (T, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok && m.stamp == stamp {
		return m.val, nil
	}
	v, err := fill()
	if err != nil {
		m.ok = false
		return v, err
	}
	m.stamp, m.val, m.ok = stamp, v, true
	return v, nil
}

// stampOf describes the files and directories at paths: a file by inode,
// size and modification time; a directory by the same of each file in it,
// in name order (subdirectories are left out: apt's lists/partial changes
// on every apt-get update, and neither apt nor dpkg reads them as input);
// a missing path as missing. Any rewrite, rename into place, addition or
// removal of a file changes it.
func stampOf(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case os.IsNotExist(err):
			fmt.Fprintf(&b, "%s -\n", p)
			continue
		case err != nil:
			return "", fmt.Errorf("stamp %s: %w", p, err)
		}
		if !fi.IsDir() {
			writeStamp(&b, p, fi)
			continue
		}
		fmt.Fprintf(&b, "%s/\n", p)
		entries, err := os.ReadDir(p)
		if err != nil {
			return "", fmt.Errorf("stamp %s: %w", p, err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if os.IsNotExist(err) {
				continue // removed since the listing: the directory's mtime says so
			}
			if err != nil {
				return "", fmt.Errorf("stamp %s: %w", p, err)
			}
			if info.Mode()&fs.ModeSymlink != 0 {
				// Follow links (sources.list.d entries often are).
				if t, err := os.Stat(filepath.Join(p, e.Name())); err == nil {
					info = t
				}
			}
			if info.IsDir() {
				continue
			}
			writeStamp(&b, e.Name(), info)
		}
	}
	return b.String(), nil
}

func writeStamp(b *strings.Builder, name string, fi fs.FileInfo) {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	fmt.Fprintf(b, "%s %d %d %d %o\n", name, ino, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
}

// dpkgStamp stamps dpkg's database as dpkg-query reads it: the status file
// and its journal (the updates directory).
func (b *Backend) dpkgStamp() (string, error) {
	return stampOf(b.paths.Status, filepath.Join(b.paths.AdminDir, "updates"))
}

// statuses returns dpkg's record of every package, as dpkg-query -W lists
// them, read in-process (platform/dpkgstatus) and kept while the database
// is unchanged. The slice is shared: callers must not change it.
func (b *Backend) statuses(ctx context.Context) ([]PackageStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stamp, err := b.dpkgStamp()
	if err != nil {
		return nil, fmt.Errorf("dpkg database: %w", err)
	}
	return b.dpkgMemo.get(stamp, func() ([]PackageStatus, error) {
		pkgs, err := dpkgstatus.ReadDB(b.paths.Status)
		if err != nil {
			return nil, err
		}
		out := make([]PackageStatus, len(pkgs))
		for i, p := range pkgs {
			out[i] = PackageStatus{Name: p.Name, Arch: p.Architecture, Version: p.Version,
				Want: string(p.Want), State: string(p.State), Eflag: p.Flag}
		}
		return out, nil
	})
}

// aptStamp stamps everything apt's answer about upgradable packages
// depends on: dpkg's database and its list of foreign architectures
// (dpkg --add-architecture), apt's configuration (APT_CONFIG, apt.conf,
// apt.conf.d), its sources and preferences, and the package lists.
func (b *Backend) aptStamp() (string, error) {
	paths := append(slices.Clone(b.aptInputs), filepath.Join(b.paths.AdminDir, "arch"))
	if b.opts.AptConfig != "" {
		paths = append(paths, b.opts.AptConfig)
	}
	apt, err := stampOf(paths...)
	if err != nil {
		return "", err
	}
	dpkg, err := b.dpkgStamp()
	if err != nil {
		return "", err
	}
	return apt + dpkg, nil
}

// aptInputVars are apt-config shell arguments naming the files and
// directories apt reads for aptStamp.
var aptInputVars = []string{
	"LISTS", "Dir::State::lists/d",
	"SOURCELIST", "Dir::Etc::sourcelist/f", "SOURCEPARTS", "Dir::Etc::sourceparts/d",
	"PREFS", "Dir::Etc::preferences/f", "PREFPARTS", "Dir::Etc::preferencesparts/d",
	"MAIN", "Dir::Etc::main/f", "PARTS", "Dir::Etc::parts/d",
}

// readAptInputs fills b.aptInputs from apt's configuration.
func (b *Backend) readAptInputs(ctx context.Context) error {
	out, err := b.output(ctx, "apt-config shell", "apt-config", append([]string{"shell"}, aptInputVars...)...)
	if err != nil {
		return err
	}
	vars, err := parseShellVars(out)
	if err != nil {
		return err
	}
	for i := 0; i < len(aptInputVars); i += 2 {
		v := vars[aptInputVars[i]]
		if v == "" {
			return fmt.Errorf("apt-config left %s empty", aptInputVars[i+1])
		}
		b.aptInputs = append(b.aptInputs, filepath.Clean(v))
	}
	return nil
}
