package dnf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Backend runs the real dnf. Its methods are safe for concurrent use.
type Backend struct {
	path    string
	rpm     string
	env     []string
	log     *slog.Logger
	root    string
	global  []string // dnf options after the command's name
	rpmArgs []string // rpm's global options
	paths   Paths

	mu      sync.Mutex
	primary map[string]primaryCache // by repomd.xml path
}

// New finds dnf (opts.Path, or "dnf" in PATH). It returns an error
// wrapping ErrNotFound where dnf is not installed.
func New(opts Options) (*Backend, error) {
	name := opts.Path
	if name == "" {
		name = "dnf"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("dnf backend: %w: %v", ErrNotFound, err)
	}
	b := &Backend{path: path, log: opts.Logger, root: opts.Root, primary: map[string]primaryCache{}}
	if err := b.setPaths(opts); err != nil {
		return nil, fmt.Errorf("dnf backend: %w", err)
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "LANG" && k != "LANGUAGE" && k != "LC_ALL" && k != "LC_MESSAGES" {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(append(b.env, "LC_ALL=C.UTF-8"), opts.Env...)
	return b, nil
}

// run runs dnf with args. Exit codes in ok are not errors (check-update
// exits 100 when updates are available).
func (b *Backend) run(ctx context.Context, op string, ok []int, args ...string) ([]byte, int, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.path, b.withGlobal(args)...)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err := cmd.Run()
	b.log.DebugContext(ctx, "ran dnf", "op", op, "args", args, "duration", time.Since(start), "err", err)
	if err == nil {
		return stdout.Bytes(), 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		for _, c := range ok {
			if ee.ExitCode() == c {
				return stdout.Bytes(), c, nil
			}
		}
	}
	code := -1
	if ee != nil {
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	msg := stderr.String()
	if len(msg) > 4096 {
		msg = "…" + msg[len(msg)-4096:]
	}
	return nil, code, &CommandError{Command: op, ExitCode: code, Stderr: msg, Err: err}
}

// CheckUpdate lists the available updates (dnf check-update).
func (b *Backend) CheckUpdate(ctx context.Context) ([]Update, error) {
	out, code, err := b.run(ctx, "dnf check-update", []int{100}, "check-update", "-C")
	if err != nil {
		return nil, fmt.Errorf("check updates: %w", err)
	}
	ups, err := ParseCheckUpdate(out)
	if err != nil {
		return nil, fmt.Errorf("check updates: %w", err)
	}
	if code == 100 && len(ups) == 0 {
		return nil, errors.New("check updates: dnf reported updates (exit 100) but none could be parsed")
	}
	return ups, nil
}

// SecurityAdvisories lists the security advisories of packages newer than
// the installed ones (dnf updateinfo list --security).
func (b *Backend) SecurityAdvisories(ctx context.Context) ([]AdvisoryPackage, error) {
	out, _, err := b.run(ctx, "dnf updateinfo list", nil, "updateinfo", "list", "-C", "--security")
	if err != nil {
		return nil, fmt.Errorf("list security advisories: %w", err)
	}
	advs, err := ParseUpdateinfoList(out)
	if err != nil {
		return nil, fmt.Errorf("list security advisories: %w", err)
	}
	return advs, nil
}

// AdvisoryInfo describes advisories by ID (dnf updateinfo info).
func (b *Backend) AdvisoryInfo(ctx context.Context, ids ...string) ([]Advisory, error) {
	for _, id := range ids {
		if id == "" || strings.HasPrefix(id, "-") || !validName(id) {
			return nil, fmt.Errorf("advisory info: invalid advisory ID %q", id)
		}
	}
	out, _, err := b.run(ctx, "dnf updateinfo info", nil, append([]string{"updateinfo", "info", "-C", "--"}, ids...)...)
	if err != nil {
		return nil, fmt.Errorf("advisory info: %w", err)
	}
	advs, err := ParseUpdateinfoInfo(out)
	if err != nil {
		return nil, fmt.Errorf("advisory info: %w", err)
	}
	return advs, nil
}

// Upgradable lists the available updates classified by the security
// advisories they fix.
func (b *Backend) Upgradable(ctx context.Context) ([]Update, error) {
	ups, err := b.CheckUpdate(ctx)
	if err != nil || len(ups) == 0 {
		return ups, err
	}
	advs, err := b.SecurityAdvisories(ctx)
	if err != nil {
		return nil, err
	}
	return Classify(ups, advs), nil
}
