package reboot

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// logind's session files as systemd 252 writes them.
const (
	seatSession = `# This is private data. Do not parse.
UID=1000
USER=alice
ACTIVE=1
IS_DISPLAY=1
STATE=active
REMOTE=0
TYPE=wayland
CLASS=user
SCOPE=session-2.scope
SEAT=seat0
TTY=tty2
VTNR=2
`
	sshSession = `UID=1001
USER=bob
ACTIVE=1
STATE=active
REMOTE=1
TYPE=tty
CLASS=user
TTY=pts/0
REMOTE_HOST=192.0.2.7
SERVICE=sshd
`
	greeterSession = `UID=115
USER=gdm
ACTIVE=1
STATE=active
REMOTE=0
CLASS=greeter
SEAT=seat0
VTNR=1
`
	backgroundSession = `UID=1002
USER=carol
ACTIVE=0
STATE=online
REMOTE=0
CLASS=user
SEAT=seat0
VTNR=3
`
	consoleSession = `UID=1003
USER=dave
ACTIVE=1
STATE=active
REMOTE=0
CLASS=user
TTY=tty4
`
)

func TestLogindSessions(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "run", "systemd", "sessions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"2": seatSession, "5": sshSession, "c1": greeterSession, "7": backgroundSession, "9": consoleSession, "2.ref": "UID=1001\nSEAT=seat0\nACTIVE=1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		uid   int
		want  bool
		where string
	}{
		{1000, true, "session 2 on seat0"},
		{1001, false, ""}, // ssh, and the .ref file is not a session
		{115, false, ""},  // the greeter
		{1002, false, ""}, // a session in the background
		{1003, true, "session 9 on tty4"},
		{0, false, ""},
		{4242, false, ""},
	}
	l := Logind{Root: root}
	for _, tt := range tests {
		ok, where, err := l.LocalSession(context.Background(), tt.uid)
		if err != nil || ok != tt.want || where != tt.where {
			t.Errorf("uid %d: %v %q %v, want %v %q", tt.uid, ok, where, err, tt.want, tt.where)
		}
	}
}

// Without logind, a user owning a virtual terminal is at the console.
func TestConsoleFallbackWithoutLogind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to hand a file to another uid (make test runs as root)")
	}
	root := t.TempDir()
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"console", "tty0", "tty1", "tty3", "ttyS0", "pts"} {
		if err := os.WriteFile(filepath.Join(dev, name), nil, 0o620); err != nil {
			t.Fatal(err)
		}
	}
	for name, uid := range map[string]int{"tty3": 1000, "ttyS0": 1001, "tty0": 1002} {
		if err := os.Chown(filepath.Join(dev, name), uid, 5); err != nil {
			t.Fatal(err)
		}
	}
	l := Logind{Root: root}
	for uid, want := range map[int]bool{1000: true, 1001: false, 1002: false, 0: false, 65534: false} {
		ok, where, err := l.LocalSession(context.Background(), uid)
		if err != nil || ok != want || (ok && where != "console tty3") {
			t.Errorf("uid %d: %v %q %v, want %v", uid, ok, where, err, want)
		}
	}
}

func FuzzParseSession(f *testing.F) {
	for _, s := range []string{seatSession, sshSession, greeterSession, "", "=\n==\nUID\n#x=y\n", "UID=1000\nSEAT=seat0\nACTIVE=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		s, err := parseSession(strings.NewReader(body))
		if err != nil {
			return
		}
		uid, err := strconv.Atoi(s["UID"])
		if err != nil {
			uid = 1000
		}
		if s.localActive(uid) && (s["REMOTE"] == "1" || s["UID"] == "" || (s["SEAT"] == "" && s["VTNR"] == "" && !isVT(s["TTY"]))) {
			t.Fatalf("session %q counts as local", s)
		}
		for k := range s {
			if strings.Contains(k, "\n") {
				t.Fatalf("key %q spans lines", k)
			}
		}
	})
}
