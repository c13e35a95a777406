// Command patchring-demo runs patchring's demo on one machine: a small
// simulated fleet of real patchringd processes on private state dirs and
// sockets, driven through the real patchring CLI. It cleans up after
// itself and exits on its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the patchringd and patchring binaries")
	nodes := flag.Int("nodes", 3, "how many agents to start")
	keep := flag.Bool("keep", false, "keep the demo's temp dir for inspection")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *nodes, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type agent struct {
	name, dir, sock string
	cmd             *exec.Cmd
	done            chan error
}

func run(ctx context.Context, bin string, n int, keep bool) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("", "patchring-demo-*")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("demo files kept in", work)
	} else {
		defer os.RemoveAll(work)
	}
	step := func(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

	step("starting %d patchringd agents, each with its own state dir and API socket under %s", n, work)
	var agents []*agent
	defer func() {
		for _, a := range agents {
			if a.cmd.ProcessState == nil {
				a.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-a.done:
				case <-time.After(10 * time.Second):
					a.cmd.Process.Kill()
					<-a.done
				}
			}
		}
	}()
	for i := 1; i <= n; i++ {
		a := &agent{name: fmt.Sprintf("node-%d", i), dir: filepath.Join(work, fmt.Sprintf("node-%d", i))}
		a.sock = filepath.Join(a.dir, "patchringd.sock")
		os.MkdirAll(a.dir, 0o700)
		cfg := filepath.Join(a.dir, "patchringd.yaml")
		os.WriteFile(cfg, []byte("hostname: "+a.name+"\nlog_level: warn\n"), 0o600)
		a.cmd = exec.Command(filepath.Join(bin, "patchringd"), "run", "--config", cfg, "--state-dir", a.dir, "--socket", a.sock)
		a.cmd.Stdout, a.cmd.Stderr = os.Stdout, os.Stderr
		if err := a.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", a.name, err)
		}
		a.done = make(chan error, 1)
		go func() { a.done <- a.cmd.Wait() }()
		agents = append(agents, a)
		fmt.Printf("    %s: pid %d\n", a.name, a.cmd.Process.Pid)
	}
	for _, a := range agents {
		if err := waitSocket(ctx, a); err != nil {
			return err
		}
	}
	for _, a := range agents {
		step("patchring --socket %s status", a.sock)
		if err := cli(ctx, bin, a.sock, "status"); err != nil {
			return err
		}
	}
	step("stopping the agents with SIGTERM")
	for _, a := range agents {
		a.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, a := range agents {
		select {
		case err := <-a.done:
			if err != nil {
				return fmt.Errorf("%s exited with %v", a.name, err)
			}
			fmt.Printf("    %s stopped cleanly\n", a.name)
		case <-time.After(15 * time.Second):
			return fmt.Errorf("%s did not stop", a.name)
		}
	}
	step("done: every agent started, answered on its local API and stopped cleanly")
	return nil
}

func waitSocket(ctx context.Context, a *agent) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(a.sock); err == nil {
			return nil
		}
		select {
		case err := <-a.done:
			return fmt.Errorf("%s exited early: %v", a.name, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not open its socket within 20s", a.name)
}

func cli(ctx context.Context, bin, sock string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "patchring"), append([]string{"--socket", sock}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("patchring %v: %w", args, err)
	}
	return nil
}
