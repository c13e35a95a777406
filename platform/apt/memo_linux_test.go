package apt

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStampSeesEveryWayDpkgAndAptWrite: a file replaced by rename (dpkg's
// status, apt's lists), rewritten in place, a journal file added or
// removed, a missing path appearing: each changes the stamp; reading
// changes nothing.
func TestStampSeesEveryWayDpkgAndAptWrite(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	updates := filepath.Join(dir, "updates")
	write := func(p, body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(status, "Package: a\n")
	stamp := func() string {
		t.Helper()
		s, err := stampOf(status, updates)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	last := stamp()
	step := func(what string, change func()) {
		t.Helper()
		change()
		now := stamp()
		if now == last {
			t.Errorf("%s: the stamp did not change", what)
		}
		if again := stamp(); again != now {
			t.Errorf("%s: stamping twice gave two stamps", what)
		}
		last = now
	}
	step("the journal directory made", func() {
		if err := os.Mkdir(updates, 0o755); err != nil {
			t.Fatal(err)
		}
	})
	step("a journal file added", func() { write(filepath.Join(updates, "0000"), "Package: b\n") })
	step("the status replaced by rename, same size", func() {
		write(status+"-new", "Package: c\n")
		if err := os.Rename(status+"-new", status); err != nil {
			t.Fatal(err)
		}
	})
	step("the journal folded in", func() {
		if err := os.Remove(filepath.Join(updates, "0000")); err != nil {
			t.Fatal(err)
		}
	})
	step("the status grown in place", func() { write(status, "Package: c\nVersion: 1\n") })

	// apt-get update touches lists/partial every time; a stamp that saw
	// it would never match twice.
	if err := os.Mkdir(filepath.Join(updates, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	last = stamp()
	write(filepath.Join(updates, "partial", "x"), "")
	if stamp() != last {
		t.Error("a file in a subdirectory changed the stamp")
	}
}

// TestMemoKeepsAnswersPerStamp: the answer is computed once per stamp,
// again when the stamp changes; an error is not kept.
func TestMemoKeepsAnswersPerStamp(t *testing.T) {
	var m memo[int]
	calls := 0
	fill := func() (int, error) { calls++; return calls, nil }
	for _, c := range []struct {
		stamp string
		want  int
	}{{"a", 1}, {"a", 1}, {"b", 2}, {"b", 2}, {"a", 3}} {
		if got, _ := m.get(c.stamp, fill); got != c.want {
			t.Errorf("get(%q) = %d, want %d", c.stamp, got, c.want)
		}
	}
	if _, err := m.get("c", func() (int, error) { return 0, os.ErrNotExist }); err == nil {
		t.Error("the error was lost")
	}
	if got, _ := m.get("c", fill); got != 4 {
		t.Errorf("after an error, get = %d, want a new answer", got)
	}
}
