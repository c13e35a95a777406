package reboot

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultCommandLinux(t *testing.T) {
	withSystemd := t.TempDir()
	tests := []struct {
		name       string
		systemdDir string
		message    string
		want       []string
	}{
		{"systemd", withSystemd, "patchring: kernel update", []string{"systemctl", "reboot", "--message=patchring: kernel update"}},
		{"systemd without message", withSystemd, "", []string{"systemctl", "reboot"}},
		{"other init", filepath.Join(withSystemd, "absent"), "patchring: kernel update", []string{"shutdown", "-r", "now", "patchring: kernel update"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New(Options{SystemdDir: tt.systemdDir}).Argv(tt.message)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Argv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseBootTime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{"typical", "cpu  1 2 3\nintr 5\nctxt 9\nbtime 1767225600\nprocesses 10\n", 1767225600, ""},
		{"missing", "cpu 1\n", 0, "no btime line"},
		{"garbage", "btime soon\n", 0, "bad btime line"},
		{"negative", "btime -5\n", 0, "bad btime line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBootTime([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Unix() != tt.want {
				t.Fatalf("got %v, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseBootTime(f *testing.F) {
	f.Add([]byte("cpu 1\nbtime 1767225600\n"))
	f.Add([]byte("btime \n"))
	f.Add([]byte("btime 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		bt, err := parseBootTime(raw)
		if err == nil && bt.Unix() <= 0 {
			t.Fatalf("accepted a boot time at or before the epoch: %v", bt)
		}
	})
}

// TestBootTimeMatchesUptime checks the real /proc/stat against
// /proc/uptime: boot time plus uptime is now, to a few seconds.
func TestBootTimeMatchesUptime(t *testing.T) {
	bt, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, err := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	fromUptime := time.Now().Add(-time.Duration(up * float64(time.Second)))
	if d := bt.Sub(fromUptime).Abs(); d > 5*time.Second {
		t.Errorf("boot time %v differs from now-uptime %v by %v", bt, fromUptime, d)
	}
}
