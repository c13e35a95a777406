// Command patchring-package builds patchring's .deb and .rpm packages for
// amd64 and arm64 with nfpm: both binaries, the systemd unit and the SysV
// script that patchringd install (kardianos/service) writes, a commented
// default configuration, the tray's XDG autostart entry, shell completions
// and maintainer scripts. `make package` runs it from the module root.
//
// The packages are reproducible: binaries are built with -trimpath and no
// build ID, every file and the build date get one modification time
// (SOURCE_DATE_EPOCH, else the commit time), entries are sorted and the
// RPM build host is fixed. The git describe output given with --version
// becomes versions that sort right under dpkg and rpm (see
// versionFromDescribe).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

const module = "github.com/patchring/patchring"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "patchring-package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("patchring-package", flag.ContinueOnError)
	describe := fs.String("version", "", "git describe --tags --always --dirty output (default: run it)")
	archs := fs.String("arch", "amd64,arm64", "architectures, comma separated (amd64, arm64)")
	out := fs.String("out", "bin/pkg", "output directory")
	goCmd := fs.String("go", "go", "go command")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *describe == "" {
		b, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			return fmt.Errorf("git describe (or give --version): %w", err)
		}
		*describe = strings.TrimSpace(string(b))
	}
	v, err := versionFromDescribe(*describe)
	if err != nil {
		return err
	}
	mtime, err := sourceDate(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "patchring-package-build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	build := func(arch string) (daemon, cli string, err error) {
		dir := filepath.Join(work, arch)
		ldflags := "-buildid= -X " + module + "/internal/version.Version=" + *describe
		cmd := exec.CommandContext(ctx, *goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags,
			"-o", dir+"/", "./cmd/patchringd", "./cmd/patchring")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("go build for linux/%s: %w", arch, err)
		}
		return filepath.Join(dir, "patchringd"), filepath.Join(dir, "patchring"), nil
	}
	built := map[string][2]string{}
	get := func(arch string) ([2]string, error) {
		if b, ok := built[arch]; ok {
			return b, nil
		}
		d, c, err := build(arch)
		built[arch] = [2]string{d, c}
		return built[arch], err
	}
	host, err := get(runtime.GOARCH)
	if err != nil {
		return err
	}
	unit, sysv, err := serviceFiles(ctx, host[0])
	if err != nil {
		return err
	}
	comp, err := completions(ctx, host[1])
	if err != nil {
		return err
	}
	for _, arch := range strings.Split(*archs, ",") {
		if debArch[arch] == "" {
			return fmt.Errorf("--arch %s: use amd64 or arm64", arch)
		}
		b, err := get(arch)
		if err != nil {
			return err
		}
		p := &payload{Version: v, Arch: arch, Daemon: b[0], CLI: b[1], Unit: unit, SysV: sysv, Completions: comp, MTime: mtime}
		files, err := pack(p, *out)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Println(f)
		}
	}
	return nil
}

// sourceDate is the time every packaged file carries: SOURCE_DATE_EPOCH
// (reproducible-builds.org) when set, else the time of the commit.
func sourceDate(ctx context.Context) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		b, err := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct").Output()
		if err != nil {
			return time.Time{}, errors.New("no SOURCE_DATE_EPOCH and no git commit to take the time from")
		}
		s = strings.TrimSpace(string(b))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a positive Unix time", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
