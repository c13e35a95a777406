package reboot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sessions tells whether a user is at the machine: logged in on a seat or
// the console, not remotely. Logind is the real one; tests inject fakes.
type Sessions interface {
	// LocalSession reports whether uid has an active local session and,
	// if so, names it for the log ("session 3 on seat0").
	LocalSession(ctx context.Context, uid int) (bool, string, error)
}

var _ Sessions = Logind{}

// Logind reads the session state systemd-logind keeps under
// /run/systemd/sessions (one key=value file per session). Where logind is
// absent (no /run/systemd/sessions), it falls back to the console: a
// virtual terminal /dev/ttyN (N ≥ 1) or /dev/console owned by the user,
// which login(1) sets when the user logs in there.
type Logind struct {
	// Root is prefixed to every path read; empty means "/". Tests point it
	// at a directory holding a fake run/systemd/sessions and dev.
	Root string
}

// LocalSession implements Sessions.
func (l Logind) LocalSession(ctx context.Context, uid int) (bool, string, error) {
	root := l.Root
	if root == "" {
		root = "/"
	}
	dir := filepath.Join(root, "run", "systemd", "sessions")
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return consoleOwner(filepath.Join(root, "dev"), uid)
	case err != nil:
		return false, "", fmt.Errorf("read logind sessions: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return false, "", err
		}
		name := e.Name()
		if !e.Type().IsRegular() || strings.Contains(name, ".") { // skip the *.ref FIFOs
			continue
		}
		s, err := readSessionFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // ended while we looked
				continue
			}
			return false, "", fmt.Errorf("read logind session %s: %w", name, err)
		}
		if s.localActive(uid) {
			where := s["SEAT"]
			if where == "" {
				where = s["TTY"]
			}
			return true, fmt.Sprintf("session %s on %s", name, where), nil
		}
	}
	return false, "", nil
}

// session is one logind session file's keys.
type session map[string]string

// maxSessionFile bounds what is read of one session file.
const maxSessionFile = 64 << 10

func readSessionFile(path string) (session, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSession(io.LimitReader(f, maxSessionFile))
}

// parseSession reads logind's key=value lines; comments and lines without
// "=" are skipped.
func parseSession(r io.Reader) (session, error) {
	s := session{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		s[k] = v
	}
	return s, sc.Err()
}

// localActive reports whether the session belongs to uid, is active, is a
// user's (not a greeter's or a manager's) and is local: on a seat or a
// virtual terminal, not a remote login.
func (s session) localActive(uid int) bool {
	u, err := strconv.Atoi(s["UID"])
	if err != nil || u != uid {
		return false
	}
	if s["REMOTE"] == "1" || (s["REMOTE_HOST"] != "" && s["REMOTE_HOST"] != "localhost") {
		return false
	}
	if c := s["CLASS"]; c != "" && c != "user" {
		return false
	}
	if s["ACTIVE"] != "1" && s["STATE"] != "active" {
		return false
	}
	return s["SEAT"] != "" || isVT(s["TTY"]) || s["VTNR"] != ""
}

// isVT reports whether name is a virtual terminal or the console ("tty2",
// "/dev/tty2", "console"), not a pseudo-terminal.
func isVT(name string) bool {
	name = strings.TrimPrefix(name, "/dev/")
	if name == "console" {
		return true
	}
	n, ok := strings.CutPrefix(name, "tty")
	if !ok || n == "" {
		return false
	}
	v, err := strconv.Atoi(n)
	return err == nil && v >= 1
}
