// Command patchring-demo runs patchring's demo on one machine: an admin's
// signed repository (the origin), a vendor apt repository, and two sites of
// real patchringd agents, each on its own sandboxed package root and
// enrolled with a token through a real issuing service (patchring ca
// serve); an intruder with the stolen gossip key is refused. It
// publishes a signed ring policy, releases a real .deb update and follows
// it through the rings, including a node whose health check fails and is
// rolled back, and a reboot deferred by the user and then enforced. It
// cleans up after itself and exits on its own.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

//go:embed policy.yaml
var demoPolicy []byte

func main() {
	bin := flag.String("bin", "bin", "directory holding the patchringd and patchring binaries")
	keep := flag.Bool("keep", false, "keep the demo's files for inspection")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d, err := newDemo(*bin, *keep)
	if err == nil {
		err = d.run(ctx)
		d.close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}
