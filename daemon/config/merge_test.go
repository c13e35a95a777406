package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// cliFlags is what patchringd's command line looks like: --config plus
// BindFlags, parsed from args.
func cliFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("patchringd", pflag.ContinueOnError)
	var cfgFile string
	fs.StringVar(&cfgFile, "config", "", "")
	c := Default()
	BindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "patchringd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadWithFlagsLayers(t *testing.T) {
	file := writeFile(t, "state_dir: /from-file\nhostname: filehost\ntags: [a, b]\ninventory:\n  interval: 2h\n")
	c, err := LoadWithFlags(file, true, cliFlags(t, "--config", file, "--hostname", "flaghost", "--tags", "c", "--policy-refresh", "1m"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "flaghost" {
		t.Errorf("hostname %q: the flag should override the file", c.Hostname)
	}
	if !slices.Equal(c.Tags, []string{"c"}) {
		t.Errorf("tags %v: a slice flag replaces the file's list", c.Tags)
	}
	if c.StateDir != "/from-file" || c.Inventory.Interval != 2*time.Hour {
		t.Errorf("state dir %q, interval %v: flags the user did not set must not hide the file", c.StateDir, c.Inventory.Interval)
	}
	if c.Policy.RefreshInterval != time.Minute {
		t.Errorf("policy refresh %v from the flag", c.Policy.RefreshInterval)
	}
	if d := Default(); c.LogLevel != d.LogLevel || c.Apt.CheckInterval != d.Apt.CheckInterval {
		t.Errorf("unset settings lost their defaults: %+v", c)
	}
}

func TestLoadWithFlagsMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	c, err := LoadWithFlags(missing, false, cliFlags(t, "--site", "hq"))
	if err != nil {
		t.Fatalf("default file missing: %v", err)
	}
	if c.Site != "hq" {
		t.Errorf("site %q", c.Site)
	}
	_, err = LoadWithFlags(missing, true, cliFlags(t))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("named file missing: %v, want an error naming %s", err, missing)
	}
}

func TestLoadWithFlagsErrors(t *testing.T) {
	bad := writeFile(t, "inventory:\n  interval: often\n")
	if _, err := LoadWithFlags(bad, false, cliFlags(t)); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("bad file: %v, want file and line", err)
	}
	ok := writeFile(t, "")
	if _, err := LoadWithFlags(ok, true, cliFlags(t, "--log-format", "xml")); err == nil || !strings.Contains(err.Error(), "(flags)") || !strings.Contains(err.Error(), "xml") {
		t.Errorf("bad flag value: %v, want it named as coming from the flags", err)
	}
}
