package reboot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestConfiguredCommand(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		message string
		want    []string
	}{
		{"placeholder replaced", []string{"/usr/local/bin/restart", "--why={message}"}, "updates", []string{"/usr/local/bin/restart", "--why=updates"}},
		{"no placeholder", []string{"reboot-now"}, "updates", []string{"reboot-now"}},
		{"message on one line", []string{"x", "{message}"}, "a\nb\t c", []string{"x", "a b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New(Options{Command: tt.command}).Argv(tt.message)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Argv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanMessageKeepsUTF8(t *testing.T) {
	long := strings.Repeat("ü", 400) // 800 bytes
	got := cleanMessage(long)
	if len(got) > maxMessage || !utf8.ValidString(got) || got == "" {
		t.Errorf("cleanMessage: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestRebootRunsTheCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	script := filepath.Join(dir, "fake-reboot")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s|' \"$@\" > "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := New(Options{Command: []string{script, "-r", "{message}"}})
	if err := r.Reboot(context.Background(), "patchring: security updates"); err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "-r|patchring: security updates|" {
		t.Errorf("the command got %q", got)
	}
}

func TestRebootReportsFailure(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    string
	}{
		{"exit status with output", []string{"sh", "-c", "echo 'Failed to talk to init daemon.' >&2; exit 1"}, "Failed to talk to init daemon."},
		{"missing tool", []string{"/nonexistent/shutdown", "-r"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(Options{Command: tt.command}).Reboot(context.Background(), "m")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "reboot: ") {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
