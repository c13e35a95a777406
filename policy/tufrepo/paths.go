package tufrepo

import (
	"fmt"
	"os"
	"path/filepath"
)

// resolvePath returns the absolute, symlink-resolved form of p. Parts of p
// that do not exist yet are kept as written below the deepest existing
// ancestor.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	cur := abs
	for {
		resolved, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether child is parent or lies below it.
func within(child, parent string) bool {
	rel, err := filepath.Rel(parent, child)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !filepath.IsAbs(rel) && !startsWithDotDot(rel))
}

func startsWithDotDot(rel string) bool {
	return len(rel) >= 3 && rel[:2] == ".." && os.IsPathSeparator(rel[2])
}

// checkKeysOutsideRepo refuses a keys directory inside (or equal to) the
// repository directory: the repository is served to the world.
func checkKeysOutsideRepo(dir, keysDir string) error {
	rd, err := resolvePath(dir)
	if err != nil {
		return fmt.Errorf("resolve repository dir %s: %w", dir, err)
	}
	kd, err := resolvePath(keysDir)
	if err != nil {
		return fmt.Errorf("resolve keys dir %s: %w", keysDir, err)
	}
	if within(kd, rd) {
		return fmt.Errorf("%w: keys dir %s is inside repository dir %s, which is served publicly", ErrKeysInRepo, keysDir, dir)
	}
	return nil
}
