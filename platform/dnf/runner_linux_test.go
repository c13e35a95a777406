package dnf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNewWithoutDnf(t *testing.T) {
	_, err := New(Options{Path: filepath.Join(t.TempDir(), "dnf")})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("New with a missing dnf: %v, want ErrNotFound", err)
	}
}

// standIn writes an executable script named dnf that prints the fixture
// for each subcommand and exits as dnf does. dnf cannot be installed on
// the Debian machines these tests run on (see testdata/README.md); the
// script exercises the runner's process handling: arguments, exit code 100
// of check-update, failures and their standard error.
func standIn(t *testing.T, checkUpdateExit int) string {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
echo "$@" >> "` + dir + `/args"
case "$1 $2" in
"check-update "*) cat "` + abs + `/rhel9-check-update.txt"; exit ` + strconv.Itoa(checkUpdateExit) + ` ;;
"updateinfo list") cat "` + abs + `/rhel9-updateinfo-list-security.txt" ;;
"updateinfo info") cat "` + abs + `/rhel9-updateinfo-info.txt" ;;
*) echo "Error: unknown command $1" >&2; exit 1 ;;
esac
`
	p := filepath.Join(dir, "dnf")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunnerUpgradable(t *testing.T) {
	ctx := context.Background()
	b, err := New(Options{Path: standIn(t, 100)})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sec := 0
	for _, u := range ups {
		if u.Security {
			sec++
		}
	}
	if len(ups) != 12 || sec != 7 {
		t.Errorf("%d updates, %d security; want 12 and 7", len(ups), sec)
	}
	advs, err := b.AdvisoryInfo(ctx, "RHSA-2024:9185")
	if err != nil || len(advs) != 3 {
		t.Errorf("AdvisoryInfo = %d advisories, %v", len(advs), err)
	}
	if _, err := b.AdvisoryInfo(ctx, "--enablerepo=evil"); err == nil {
		t.Error("AdvisoryInfo accepted an option as an advisory ID")
	}
}

func TestRunnerErrors(t *testing.T) {
	ctx := context.Background()
	b, err := New(Options{Path: standIn(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.CheckUpdate(ctx)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 1 || !strings.Contains(err.Error(), "dnf check-update") {
		t.Fatalf("check-update exiting 1: %v", err)
	}
	b2, err := New(Options{Path: standIn(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	// Exit 0 with a list is what dnf never does, but it is not an error.
	if ups, err := b2.CheckUpdate(ctx); err != nil || len(ups) != 12 {
		t.Errorf("check-update exiting 0: %d, %v", len(ups), err)
	}
}
