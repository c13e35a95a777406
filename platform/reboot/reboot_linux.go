package reboot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

func defaultArgv(opts Options, message string) []string {
	dir := opts.SystemdDir
	if dir == "" {
		dir = "/run/systemd/system"
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		argv := []string{"systemctl", "reboot"}
		if message != "" {
			argv = append(argv, "--message="+message)
		}
		return argv
	}
	argv := []string{"shutdown", "-r", "now"}
	if message != "" {
		argv = append(argv, message)
	}
	return argv
}

// BootTime returns when the machine booted: the btime line of /proc/stat,
// to the second.
func BootTime() (time.Time, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	return parseBootTime(raw)
}

func parseBootTime(raw []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil || sec <= 0 {
				return time.Time{}, fmt.Errorf("boot time: /proc/stat has a bad btime line %q", line)
			}
			return time.Unix(sec, 0), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, fmt.Errorf("boot time: read /proc/stat: %w", err)
	}
	return time.Time{}, fmt.Errorf("boot time: /proc/stat has no btime line")
}
