//go:build linux

package sitetest

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// policyToolOnly approves acme-tool only: libacme changes only because
// apt's solver needs it (a side upgrade).
const policyToolOnly = `schema: 1
name: tool-only
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
auto_approve:
  - name: acme-tool
    sources: [apt]
    packages: [acme-tool]
`

func libAcme(version string, payloadBytes int) apttest.Package {
	files := []apttest.File{{Path: "/usr/share/libacme/VERSION", Body: []byte(version + "\n")}}
	if payloadBytes > 0 {
		blob := make([]byte, payloadBytes)
		if _, err := rand.Read(blob); err != nil {
			panic(err)
		}
		files = append(files, apttest.File{Path: "/usr/share/libacme/data.bin", Body: blob})
	}
	return apttest.Package{Name: "libacme", Version: version, Description: "Acme's library (patchring site test package)", Files: files}
}

// TestSideUpgradePayloadFromPeer: acme-tool 1.1 needs libacme (>= 1.1),
// which no policy rule approves: apt's solver adds it to each node's
// transaction. Its payload, like acme-tool's, crosses the WAN once
// (fetched by the node rendezvous hashing chose for it) and reaches every
// other node from a peer, never from the origin.
func TestSideUpgradePayloadFromPeer(t *testing.T) {
	n := envInt(t, "PATCHRING_SITETEST_NODES", 4)
	s := newSite(t, siteConfig{Nodes: n, Installed: []apttest.Package{libAcme("1.0", 0)}})
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")

	debs := filepath.Join(s.dir, "debs")
	lib11 := apttest.MustBuildDeb(t, debs, libAcme("1.1", 1<<20))
	tool := acmeTool("1.1", 64<<10)
	tool.Depends = []string{"libacme (>= 1.1)"}
	tool11 := apttest.MustBuildDeb(t, debs, tool)
	s.origin.apt.MustAdd(t, lib11, tool11)
	s.waitAction(t, s.nodes, time.Minute, "1.1", "not-approved")
	s.waitConverged(t, time.Minute, "hold")

	e, ok := s.origin.apt.Entry("libacme", "1.1", apttest.DefaultArch)
	if !ok {
		t.Fatal("libacme 1.1 is not in the repository")
	}
	chosen := s.byID(site.Rank(e.SHA256, members(s.nodes))[0].ID)
	s.origin.publishPolicy(t, policyToolOnly)
	s.waitInstalled(t, s.nodes, 3*time.Minute, "1.1")

	ctx := context.Background()
	for _, nd := range s.nodes {
		txs, err := nd.c.History(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var side bool
		for _, it := range txs[0].Items {
			if it.Package == "libacme" && it.To == "1.1" && !it.Requested && it.Result == "installed" {
				side = true
			}
		}
		if !side || len(txs[0].Items) != 2 {
			t.Errorf("%s: transaction %+v does not hold libacme 1.1 as a side upgrade", nd.hostname, txs[0])
		}
	}
	base := filepath.Base(e.Filename)
	if got := s.origin.pool.Clients(base); len(got) != 1 || got[0] != chosen.ip {
		t.Errorf("libacme 1.1 was fetched from the origin by %v, want only the rendezvous choice %s", got, chosen.ip)
	}
	size := fileSize(t, lib11)
	for _, nd := range s.nodes {
		if nd == chosen {
			continue
		}
		p, err := nd.c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.FromPeers < size {
			t.Errorf("%s: %d bytes from peers, want at least libacme's %d", nd.hostname, p.FromPeers, size)
		}
	}
}
