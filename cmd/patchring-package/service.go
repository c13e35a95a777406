package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// serviceFlags are the flags the packaged service runs patchringd with:
// the system paths, named explicitly so the unit says where things are.
var serviceFlags = []string{
	"--config", pathConfig,
	"--state-dir", "/var/lib/patchring",
	"--socket", "/run/patchring/patchringd.sock",
}

// serviceFiles returns the systemd unit and the SysV init script exactly as
// `patchringd install` writes them through kardianos/service: it runs
// daemon (a binary for this machine) in a private mount namespace where
// tmpfs hides the init directories, once as on a SysV system and once as on
// a systemd one (a recording systemctl stands in for systemd), and reads
// what it wrote. The unit so matches cmd/patchringd's golden file, which
// pins kardianos/service's output. Nothing outside the namespace changes.
// Root, or unprivileged user namespaces, are needed.
func serviceFiles(ctx context.Context, daemon string) (unit, sysv []byte, err error) {
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, nil, fmt.Errorf("service files: unshare not found: install util-linux")
	}
	work, err := os.MkdirTemp("", "patchring-service-files-*")
	if err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	defer os.RemoveAll(work)
	fake := filepath.Join(work, "bin")
	if err := os.Mkdir(fake, 0o755); err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	if err := os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	flags := strings.Join(serviceFlags, " ")
	script := `set -e
for d in /etc/init.d /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/systemd/system /etc/patchring /etc/xdg/autostart /run /var/log; do
  mkdir -p "$d"; mount -t tmpfs -o size=16m patchring-package "$d"
done
touch ` + pathConfig + `
"$DAEMON" install ` + flags + ` >/dev/null
cp /etc/init.d/patchringd "$WORK/sysv"
"$DAEMON" uninstall ` + flags + ` >/dev/null
mkdir -p /run/systemd/system
PATH="$WORK/bin:$PATH" "$DAEMON" install ` + flags + ` >/dev/null
cp /etc/systemd/system/patchringd.service "$WORK/unit"
`
	args := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		args = append([]string{"--user", "--map-root-user"}, args...)
	}
	cmd := exec.CommandContext(ctx, "unshare", append(args, "sh", "-c", script)...)
	cmd.Env = append(os.Environ(), "DAEMON="+daemon, "WORK="+work)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("service files: patchringd install in a private mount namespace: %w\n%s", err, out)
	}
	if unit, err = os.ReadFile(filepath.Join(work, "unit")); err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	if sysv, err = os.ReadFile(filepath.Join(work, "sysv")); err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	// The files name the binary that wrote them; the package installs it
	// at pathDaemon.
	abs, err := filepath.Abs(daemon)
	if err != nil {
		return nil, nil, fmt.Errorf("service files: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for _, b := range []*[]byte{&unit, &sysv} {
		if !bytes.Contains(*b, []byte(abs)) {
			return nil, nil, fmt.Errorf("service files: the generated file does not name %s:\n%s", abs, *b)
		}
		*b = bytes.ReplaceAll(*b, []byte(abs), []byte(pathDaemon))
	}
	return unit, sysv, nil
}

// completions runs the CLI (a binary for this machine) to generate its
// shell completions.
func completions(ctx context.Context, cli string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, cli, "completion", sh)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("completions: patchring completion %s: %w\n%s", sh, err, stderr.String())
		}
		out[sh] = stdout.Bytes()
	}
	return out, nil
}
