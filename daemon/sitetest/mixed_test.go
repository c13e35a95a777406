//go:build linux

package sitetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/dnf/dnftest"
)

// policyMixed: desk-00 (Debian) and desk-02 (rpm) are the pilot ring; the
// broad ring waits for two pilot successes with an update, so each of its
// nodes waits for the pilot of the other package format too.
const policyMixed = `schema: 1
name: mixed
expires: 2035-01-01T00:00:00Z
rings:
  - name: pilot
    select: [{hostname: desk-00}, {hostname: desk-02}]
    defer: 0s
  - name: broad
    default: true
    defer: 0s
    gates: [{ring: pilot, min_success: 100%, min_nodes: 2}]
auto_approve:
  - name: the catalog
    sources: [catalog]
`

// TestMixedSiteDebAndRPM: one site of four agents in network namespaces,
// two on Debian roots (apt, dpkg) and two on rpm roots (dnf, rpm, with the
// vendor's signed dnf repository behind the WAN). The admin publishes
// acme-agent 2.0-1 in the catalog as a .deb and as an .rpm. Each node
// installs its own format through the same rings; the broad ring's gate
// counts the pilots of both formats (one update, one result ID); each
// payload crosses the WAN once; every node's fleet view lists all four
// with their package format.
//
// The nodes' keys are chosen so that, in the pilot ring, the rpm node
// ranks first for the .deb and the Debian node for the .rpm: if the site
// chose WAN fetchers among all members of a ring, each pilot would wait
// out its 20 s patience for a node that never fetches a payload of the
// other format, and its log would say "origin-fallback".
func TestMixedSiteDebAndRPM(t *testing.T) {
	t.Parallel()
	if err := dnftest.CheckTools(); err != nil {
		t.Fatal(err)
	}
	const version = "2.0-1"
	files := t.TempDir()
	deb := apttest.MustBuildDeb(t, files, apttest.Package{Name: "acme-agent", Version: version,
		Description: "Acme's agent (patchring mixed-site test)",
		Files:       []apttest.File{{Path: "/usr/share/acme-agent/VERSION", Body: []byte(version + "\n")}}})
	rpm, err := dnftest.BuildRPM(files, dnftest.Package{Name: "acme-agent", Version: "2.0", Release: "1",
		Files: []dnftest.File{{Path: "/usr/share/acme-agent/VERSION", Body: []byte(version + "\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	debHash, rpmHash := fileSHA256(t, deb), fileSHA256(t, rpm)
	const debPilot, rpmPilot = 0, 2
	keys := keysRankingOtherFormatFirst(t, debHash, rpmHash, debPilot, rpmPilot)

	s := newSite(t, siteConfig{Nodes: 4, Keys: keys, RPM: func(i int) bool { return i >= 2 }})
	s.publishPolicyCLI(t, policyMixed)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "mixed")
	s.admin(t, "catalog", "add", deb, "--package", "acme-agent", "--version", version)
	s.admin(t, "catalog", "add", rpm)

	txs := make(map[string]*apitypes.Transaction)
	s.waitFor(t, 4*time.Minute, "acme-agent "+version+" installed on every node", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			if txs[n.hostname] != nil {
				continue
			}
			tx, err := lastTxTo(ctx, n, "acme-agent", version)
			if err != nil || tx == nil || tx.Outcome == "" {
				return false, fmt.Sprintf("%s: no finished transaction to %s yet (%v)", n.hostname, version, err)
			}
			if tx.Outcome != "installed" {
				t.Fatalf("%s: transaction %d ended %s (%s), want installed\n%s", n.hostname, tx.ID, tx.Outcome, tx.Error, n.logTail(40))
			}
			txs[n.hostname] = tx
		}
		return true, ""
	})

	ctx := t.Context()
	for _, n := range s.nodes {
		if n.rsb != nil {
			if v, err := n.rsb.InstalledVersion(ctx, "acme-agent"); err != nil || v != version {
				t.Errorf("%s: rpm reports acme-agent %q (%v), want %s", n.hostname, v, err, version)
			}
			continue
		}
		if v, st, err := n.sb.InstalledVersion(ctx, "acme-agent"); err != nil || v != version || st != "ii " {
			t.Errorf("%s: dpkg reports acme-agent %q %q (%v), want %s installed", n.hostname, v, st, err, version)
		}
	}
	// The gate: broad began after both pilots, of either format, ended.
	pilotsDone := maxTime(txs["desk-00"].Ended, txs["desk-02"].Ended)
	for _, h := range []string{"desk-01", "desk-03"} {
		if txs[h].Started.Before(pilotsDone) {
			t.Errorf("%s (broad) began its install at %s, before both pilots had ended (%s)", h, txs[h].Started.Format(time.RFC3339Nano), pilotsDone.Format(time.RFC3339Nano))
		}
	}
	// One WAN copy of each payload, by the pilot of its format, without
	// waiting for the other format's pilot.
	for _, f := range []string{filepath.Base(deb), filepath.Base(rpm)} {
		if got := s.origin.TargetRequests(f); got != 1 {
			t.Errorf("the signed repository served %s %d times, want once for the site", f, got)
		}
	}
	for _, c := range []struct {
		n    *node
		hash string
	}{{s.nodes[debPilot], debHash}, {s.nodes[rpmPilot], rpmHash}} {
		logs, err := os.ReadFile(c.n.logPath)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`payload obtained" sha256=` + c.hash + ` via=(\S+)`)
		via := "(no log line)"
		if m := re.FindSubmatch(logs); m != nil {
			via = string(m[1])
		}
		if via != "origin" {
			t.Errorf("%s obtained its payload %s via %s, want origin (first among the ring's nodes of its format)", c.n.hostname, c.hash[:12], via)
		}
	}
	// Every node's fleet view: all four, with their formats.
	want := map[string]string{"desk-00": "deb", "desk-01": "deb", "desk-02": "rpm", "desk-03": "rpm"}
	s.waitFor(t, time.Minute, "every fleet view lists both formats", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			f, err := n.c.Fleet(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: fleet: %v", n.hostname, err)
			}
			got := map[string]string{}
			for _, m := range f.Members {
				if m.Liveness == "alive" {
					got[m.Hostname] = m.Format
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return false, fmt.Sprintf("%s sees %v", n.hostname, got)
			}
		}
		return true, ""
	})
}

// lastTxTo is n's newest transaction that installs pkg at version (nil:
// none yet).
func lastTxTo(ctx context.Context, n *node, pkg, version string) (*apitypes.Transaction, error) {
	txs, err := n.c.History(ctx, 5)
	if err != nil {
		return nil, err
	}
	for i := range txs {
		for _, it := range txs[i].Items {
			if it.Package == pkg && it.To == version {
				return &txs[i], nil
			}
		}
	}
	return nil, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func fileSHA256(t testing.TB, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// keysRankingOtherFormatFirst returns four node keys such that, between
// nodes debPilot and rpmPilot, rpmPilot ranks first for debHash and
// debPilot for rpmHash.
func keysRankingOtherFormatFirst(t testing.TB, debHash, rpmHash string, debPilot, rpmPilot int) []crypto.PrivKey {
	t.Helper()
	for range 1000 {
		keys, ms := nodeKeys(t, 4)
		pilots := []site.Member{ms[debPilot], ms[rpmPilot]}
		if site.Rank(debHash, pilots)[0] == ms[rpmPilot] && site.Rank(rpmHash, pilots)[0] == ms[debPilot] {
			return keys
		}
	}
	t.Fatal("no key set with the other format's pilot first for each payload in 1000 tries")
	return nil
}
