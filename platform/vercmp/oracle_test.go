package vercmp

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The tests in this file check vercmp against the real tools: dpkg
// (always present on Debian) and rpm (Debian package "rpm").

func needTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %q (apt-get install -y --no-install-recommends %s)", tool, pkg, pkg)
	}
	return p
}

// indexVersions returns the distinct Version fields of this machine's apt
// Packages indices, decompressed by apt's own helper (read once per test
// binary).
func indexVersions(t testing.TB) []string {
	t.Helper()
	indexOnce.Do(func() { indexVers, indexErr = readIndexVersions() })
	if indexErr != nil {
		t.Fatal(indexErr)
	}
	return indexVers
}

var (
	indexOnce sync.Once
	indexVers []string
	indexErr  error
)

func readIndexVersions() ([]string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("apt-get not found: install the Debian package \"apt\"")
	}
	out, err := exec.Command("apt-get", "indextargets", "--format", "$(FILENAME)", "Created-By: Packages").Output()
	if err != nil {
		return nil, fmt.Errorf("apt-get indextargets: %w", err)
	}
	seen := map[string]bool{}
	for _, file := range strings.Fields(string(out)) {
		if _, err := os.Stat(file); err != nil {
			continue
		}
		// grep in the pipeline keeps the ~100 MB of index text out of the
		// (possibly race-instrumented) test process.
		data, err := exec.Command("sh", "-c", `/usr/lib/apt/apt-helper cat-file "$1" | grep '^Version: ' | sort -u`, "sh", file).Output()
		if err != nil {
			return nil, fmt.Errorf("read versions of %s: %w", file, err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Version: "); ok {
				seen[strings.TrimSpace(v)] = true
			}
		}
	}
	if len(seen) < 1000 {
		return nil, fmt.Errorf("only %d versions in apt's Packages indices: run apt-get update first", len(seen))
	}
	vs := make([]string, 0, len(seen))
	for v := range seen {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs, nil
}

// runBatch runs script (a bash loop reading "A B" lines from the file given
// as $1 and printing one result line per pair) over pairs, split across
// two processes, and returns the output lines in pair order.
func runBatch(t testing.TB, script string, pairs [][2]string) []string {
	t.Helper()
	const workers = 2
	dir := t.TempDir()
	results := make([][]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	chunk := (len(pairs) + workers - 1) / workers
	for w := range workers {
		lo, hi := min(w*chunk, len(pairs)), min((w+1)*chunk, len(pairs))
		var in strings.Builder
		for _, p := range pairs[lo:hi] {
			fmt.Fprintf(&in, "%s %s\n", p[0], p[1])
		}
		file := filepath.Join(dir, fmt.Sprintf("pairs%d", w))
		if err := os.WriteFile(file, []byte(in.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out, err := exec.Command("bash", "-c", script, "batch", file).Output()
			if err != nil {
				errs[w] = fmt.Errorf("batch %d: %w", w, err)
				return
			}
			results[w] = strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if hi == lo {
				results[w] = nil
			}
			if len(results[w]) != hi-lo {
				errs[w] = fmt.Errorf("batch %d: %d results for %d pairs", w, len(results[w]), hi-lo)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return slices.Concat(results...)
}

const dpkgBatch = `while read -r a b; do
  dpkg --compare-versions "$a" lt "$b"; rc=$?
  case $rc in
    0) echo '<' ;;
    1) if dpkg --compare-versions "$a" eq "$b"; then echo '='; else echo '>'; fi ;;
    *) echo "error $rc" ;;
  esac
done < "$1"`

func symbol(c int) string { return [...]string{"<", "=", ">"}[c+1] }

// pairsFrom builds test pairs: every version against its neighbour in
// vercmp's own order (the close calls), and random pairs.
func pairsFrom(t testing.TB, vs []string, random int) [][2]string {
	t.Helper()
	sorted := slices.Clone(vs)
	slices.SortFunc(sorted, func(a, b string) int {
		c, err := Deb(a, b)
		if err != nil {
			t.Fatalf("index version invalid: %v", err)
		}
		return c
	})
	var pairs [][2]string
	rng := rand.New(rand.NewPCG(1, 2))
	// Neighbours: a sample of adjacent pairs, in both directions.
	for i := 0; i+1 < len(sorted) && len(pairs) < 1000; i += max(1, len(sorted)/500) {
		pairs = append(pairs, [2]string{sorted[i], sorted[i+1]}, [2]string{sorted[i+1], sorted[i]})
	}
	for range random {
		pairs = append(pairs, [2]string{vs[rng.IntN(len(vs))], vs[rng.IntN(len(vs))]})
	}
	// Identical and equivalent spellings.
	for i := 0; i < 100; i++ {
		v := vs[rng.IntN(len(vs))]
		pairs = append(pairs, [2]string{v, v})
		if !strings.Contains(v, ":") {
			pairs = append(pairs, [2]string{v, "0:" + v})
		}
	}
	return pairs
}

func TestDebAgreesWithDpkgOnPackagesIndex(t *testing.T) {
	needTool(t, "dpkg", "dpkg")
	vs := indexVersions(t)
	pairs := pairsFrom(t, vs, 400)
	got := runBatch(t, dpkgBatch, pairs)
	bad := 0
	for i, p := range pairs {
		c, err := Deb(p[0], p[1])
		if err != nil {
			t.Errorf("Deb(%q, %q): %v", p[0], p[1], err)
			continue
		}
		if symbol(c) != got[i] {
			bad++
			if bad <= 20 {
				t.Errorf("Deb(%q, %q) = %s, dpkg says %s", p[0], p[1], symbol(c), got[i])
			}
		}
	}
	t.Logf("compared %d pairs from %d index versions with dpkg; %d disagreements", len(pairs), len(vs), bad)
}

// rpmLua compares many pairs inside one rpm process with rpm's Lua
// rpm.vercmp (rpmver API of rpm 4.18).
func rpmLua(t testing.TB, pairs [][2]string) []string {
	t.Helper()
	needTool(t, "rpm", "rpm")
	var in strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&in, "%s %s\n", p[0], p[1])
	}
	file := filepath.Join(t.TempDir(), "pairs")
	if err := os.WriteFile(file, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`%%{lua: for line in io.lines(%q) do local a, b = line:match("^(%%S+) (%%S+)$"); local c = rpm.vercmp(a, b); io.write(c < 0 and "<" or (c > 0 and ">" or "="), "\n") end}`, file)
	out, err := exec.Command("rpm", "--eval", script).Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(pairs) {
		t.Fatalf("rpm gave %d results for %d pairs", len(lines), len(pairs))
	}
	return lines
}

// rpmStyle turns a Debian version into a valid RPM EVR: rpm forbids '-'
// inside version and release and ':' outside the epoch.
func rpmStyle(v string) string {
	epoch := ""
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i+1], v[i+1:]
	}
	v = strings.ReplaceAll(v, ":", ".")
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch + strings.ReplaceAll(v[:i], "-", "_") + "-" + v[i+1:]
	}
	return epoch + v
}

func TestRPMAgreesWithRpm(t *testing.T) {
	vs := indexVersions(t)
	rng := rand.New(rand.NewPCG(3, 4))
	extra := []string{"1.0^git1", "1.0~rc1^git1", "1.0^", "1.0~", "1.0~~", "1.0^^", "1.0.0^1", "0:1.0", "1:1", "1.0-1", "1.0-1^1", "1.0-1~1"}
	var pairs [][2]string
	for range 3000 {
		a, b := rpmStyle(vs[rng.IntN(len(vs))]), rpmStyle(vs[rng.IntN(len(vs))])
		pairs = append(pairs, [2]string{a, b})
	}
	for _, a := range extra {
		for _, b := range extra {
			pairs = append(pairs, [2]string{a, b})
		}
	}
	got := rpmLua(t, pairs)
	for i, p := range pairs {
		c, err := RPM(p[0], p[1])
		if err != nil {
			t.Errorf("RPM(%q, %q): %v", p[0], p[1], err)
			continue
		}
		if symbol(c) != got[i] {
			t.Errorf("RPM(%q, %q) = %s, rpm says %s", p[0], p[1], symbol(c), got[i])
		}
	}
}

// dpkgVerdict runs dpkg --compare-versions on one pair and returns "<",
// "=" or ">", "error" when dpkg refused a version, and whether dpkg
// warned about the syntax.
func dpkgVerdict(t testing.TB, a, b string) (verdict string, warned bool) {
	t.Helper()
	run := func(op string) (int, bool) {
		cmd := exec.Command("dpkg", "--compare-versions", "--", a, op, b)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, strings.Contains(stderr.String(), "warning")
		case errors.As(err, &ee):
			return ee.ExitCode(), strings.Contains(stderr.String(), "warning")
		}
		t.Fatalf("dpkg --compare-versions: %v", err)
		return 0, false
	}
	rc, warned := run("lt")
	switch rc {
	case 0:
		return "<", warned
	case 1:
		if rc, _ := run("eq"); rc == 0 {
			return "=", warned
		}
		return ">", warned
	}
	return "error", warned
}

func FuzzDebAgainstDpkg(f *testing.F) {
	needTool(f, "dpkg", "dpkg")
	for _, s := range [][2]string{
		{"1.0", "1.0~rc1"}, {"1:2.3-4", "2.3-4"}, {"1.0a", "1.0+"}, {"a", "1"}, {"1_0", "1.0"},
		{"-0:1", "1"}, {"+1:1", "1:1"}, {"\v1:2", "1:2"}, {"1:", "1"}, {"1.0-", "1"}, {"1 2", "1"},
		{"2147483647:1", "2147483648:1"}, {"1.0-a:b", "1.0"}, {"1.0\xff", "1.0~"}, {"1.0\x80", "1.0Z"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		// dpkg cannot receive a NUL in argv, treats "" and "<none>" as the
		// blank version, and cannot take an argument it would read as an
		// option... after "--" it takes anything else.
		for _, s := range []string{a, b} {
			if s == "" || s == "<none>" || strings.IndexByte(s, 0) >= 0 || len(s) > 200 {
				t.Skip()
			}
		}
		va, errA := ParseDeb(a)
		vb, errB := ParseDeb(b)
		hard := func(err error) bool {
			var se *SyntaxError
			return err != nil && (!errors.As(err, &se) || !se.Warning)
		}
		verdict, warned := dpkgVerdict(t, a, b)
		if hard(errA) || hard(errB) {
			if verdict != "error" {
				t.Fatalf("vercmp rejects (%v, %v) but dpkg compares %q %s %q", errA, errB, a, verdict, b)
			}
			return
		}
		if verdict == "error" {
			t.Fatalf("dpkg refuses %q vs %q, vercmp accepts them", a, b)
		}
		if warned != (errA != nil || errB != nil) {
			t.Fatalf("dpkg warned=%v about %q vs %q; vercmp errors %v, %v", warned, a, b, errA, errB)
		}
		if got := symbol(CompareDeb(va, vb)); got != verdict {
			t.Fatalf("CompareDeb(%q, %q) = %s, dpkg says %s", a, b, got, verdict)
		}
		if c, err := Deb(a, b); (err == nil) != (errA == nil && errB == nil) || (err == nil && symbol(c) != verdict) {
			t.Fatalf("Deb(%q, %q) = %d, %v inconsistent with dpkg %s", a, b, c, err, verdict)
		}
	})
}

func FuzzRPMAgainstRpm(f *testing.F) {
	needTool(f, "rpm", "rpm")
	for _, s := range [][2]string{
		{"1.0", "1.0~rc1"}, {"1.0^git1", "1.0"}, {"1:1.0-1", "1.0-1"}, {"1.0-1", "1.0"},
		{"5.5p1", "5.5p10"}, {"1.0~rc1^git1", "1.0~rc1"}, {"2_0", "2.0"}, {"00:1", "0:1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := RPM(a, b)
		if err != nil {
			return // vercmp's syntax is stricter than rpm's; rpm has no verdict to compare.
		}
		got := rpmLua(t, [][2]string{{a, b}})
		if symbol(c) != got[0] {
			t.Fatalf("RPM(%q, %q) = %s, rpm says %s", a, b, symbol(c), got[0])
		}
	})
}
