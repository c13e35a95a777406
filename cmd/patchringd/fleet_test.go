package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/gossip"
)

func newKey(t testing.TB) (string, []byte) {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k), k
}

func freeGossipAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// startGossipNode starts a daemon that joins a site's gossip pool.
func startGossipNode(t *testing.T, name, keyFile, seed string) (*daemonProc, string) {
	t.Helper()
	addr := freeGossipAddr(t)
	if seed == "" {
		seed = addr
	}
	dir := filepath.Join(t.TempDir(), name)
	p := startDaemon(t, dir, "--hostname", name, "--site", "hq", "--gossip", "--gossip-listen", addr,
		"--gossip-seeds", seed, "--gossip-key-file", keyFile, "--gossip-label", "patchring-test")
	p.waitReady(t)
	return p, addr
}

func waitKeys(t *testing.T, c *client.Client, what string, cond func(apitypes.FleetKeys) bool) apitypes.FleetKeys {
	t.Helper()
	var k apitypes.FleetKeys
	testutil.WaitFor(t, 40*time.Second, what, func() error {
		var err error
		if k, err = c.FleetKeys(context.Background()); err != nil {
			return err
		}
		if !cond(k) {
			return fmt.Errorf("last: %+v", k)
		}
		return nil
	})
	return k
}

func aliveMembers(k apitypes.FleetKeys) int {
	n := 0
	for _, m := range k.Members {
		if m.Liveness == "alive" || m.Local {
			n++
		}
	}
	return n
}

// TestGossipKeyRotationAndOutsiders: two agents form a site; an agent with
// another key cannot join it; the site rotates its key through the local
// API without losing a member, and the rotated keyring survives a restart.
func TestGossipKeyRotationAndOutsiders(t *testing.T) {
	dir := t.TempDir()
	oldB64, oldKey := newKey(t)
	keyFile := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		return p
	}
	aKeys, bKeys := keyFile("a.key", oldB64), keyFile("b.key", oldB64)
	a, seed := startGossipNode(t, "node-a", aKeys, "")
	b, _ := startGossipNode(t, "node-b", bKeys, seed)
	ca, cb := &client.Client{Socket: a.sock}, &client.Client{Socket: b.sock}
	waitKeys(t, ca, "both members", func(k apitypes.FleetKeys) bool { return aliveMembers(k) == 2 })

	otherB64, _ := newKey(t)
	outsider, _ := startGossipNode(t, "outsider", keyFile("x.key", otherB64), seed)
	co := &client.Client{Socket: outsider.sock}
	// Wait until the outsider has tried the seed and been refused (its join
	// round failed), so the absence checked below is not just "too early".
	testutil.WaitFor(t, 40*time.Second, "the outsider's join refused", func() error {
		if !strings.Contains(outsider.stderr.String(), `msg="join gossip pool failed, retrying"`) {
			return fmt.Errorf("no refused join in the outsider's log yet:\n%s", outsider.stderr)
		}
		return nil
	})
	if k, _ := ca.FleetKeys(context.Background()); len(k.Members) != 2 {
		t.Fatalf("a node with another key joined the site: %+v", k.Members)
	}
	if k, _ := co.FleetKeys(context.Background()); aliveMembers(k) != 1 {
		t.Fatalf("the outsider sees members: %+v", k.Members)
	}

	newB64, newKeyBytes := newKey(t)
	newFP, oldFP := gossip.KeyFingerprint(newKeyBytes), gossip.KeyFingerprint(oldKey)
	for _, step := range []string{"install", "use"} {
		for _, c := range []*client.Client{ca, cb} {
			if _, err := c.ChangeKey(context.Background(), step, newB64); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
		}
	}
	if _, err := ca.ChangeKey(context.Background(), "remove", newB64); err == nil {
		t.Error("removing the primary key was allowed")
	}
	for _, c := range []*client.Client{ca, cb} {
		if _, err := c.ChangeKey(context.Background(), "remove", oldB64); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	waitKeys(t, ca, "every member on the new key only", func(k apitypes.FleetKeys) bool {
		if aliveMembers(k) != 2 {
			return false
		}
		for _, m := range k.Members {
			if m.Primary != newFP || !slices.Equal(m.Installed, []string{newFP}) {
				return false
			}
		}
		return true
	})
	// The key file now holds the new key only: a restart keeps it.
	data, _ := os.ReadFile(bKeys)
	if !strings.Contains(string(data), newB64) || strings.Contains(string(data), oldB64) {
		t.Fatalf("key file after rotation:\n%s", data)
	}
	b.stop(t)
	b2 := startDaemon(t, filepath.Dir(b.sock), "--hostname", "node-b", "--site", "hq", "--gossip",
		"--gossip-listen", freeGossipAddr(t), "--gossip-seeds", seed, "--gossip-key-file", bKeys, "--gossip-label", "patchring-test")
	b2.waitReady(t)
	k := waitKeys(t, ca, "node-b back after its restart", func(k apitypes.FleetKeys) bool { return aliveMembers(k) == 2 })
	for _, m := range k.Members {
		if m.Primary == oldFP {
			t.Errorf("%s came back with the old key", m.Hostname)
		}
	}
}
