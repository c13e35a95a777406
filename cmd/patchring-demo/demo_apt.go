package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// showApt shows apt through the site: every agent's apt runs (the engine's
// apt-get update and downloads) went through its verifying apt proxy, and
// the vendor's log says how many copies of each index and package file
// left it, against the number of sites.
func (d *demo) showApt(ctx context.Context) error {
	d.step("apt through the site: each agent's apt runs through its own verifying proxy (apt.proxy), which takes index files and .debs from the site's peers")
	type sums struct{ vendor, peers, store, refused int64 }
	bySite := map[string]map[string]*sums{}
	aptAgents := 0
	for _, a := range d.agents {
		if a.rpm {
			continue // dnf: no apt proxy (demo_rpm.go)
		}
		aptAgents++
		p, err := a.client.Peers(ctx)
		if err != nil {
			return fmt.Errorf("%s: peers: %w", a.name, err)
		}
		if bySite[a.site] == nil {
			bySite[a.site] = map[string]*sums{}
		}
		for _, t := range p.Apt {
			s := bySite[a.site][t.Kind]
			if s == nil {
				s = &sums{}
				bySite[a.site][t.Kind] = s
			}
			s.vendor += t.FromVendor
			s.peers += t.FromPeers
			s.store += t.FromStore
			s.refused += t.Refused
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    SITE\tAPT FILES\tFROM VENDOR\tFROM PEERS\tFROM STORE\tREFUSED")
	sites := make([]string, 0, len(bySite))
	for s := range bySite {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, site := range sites {
		for _, kind := range []string{"release", "index", "package"} {
			if s := bySite[site][kind]; s != nil {
				fmt.Fprintf(tw, "    %s\t%s\t%d B\t%d B\t%d B\t%d\n", site, kind, s.vendor, s.peers, s.store, s.refused)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// The vendor's side: how often each index file and .deb was served
	// since the release (before it, agents starting at once each fetched
	// the first indices before their site had formed).
	served := map[string]int{}
	for _, r := range d.aptRepo.Requests()[d.aptMark:] {
		if strings.Contains(r, "/by-hash/") || strings.HasSuffix(r, ".deb") {
			served[r]++
		}
	}
	var files, copies, most int
	for _, n := range served {
		files++
		copies += n
		most = max(most, n)
	}
	ship := ""
	if d.shipCopies > 0 {
		ship = fmt.Sprintf(" and %d time(s) to the admin making the ship's bundle", d.shipCopies)
	}
	d.note("since the release the vendor served %d index and package files %d times in all, at most %d times each, to %d sites of %d apt agents%s (every agent checks the signed InRelease itself)",
		files, copies, most, len(sites), aptAgents, ship)
	if most <= len(sites)+d.shipCopies {
		d.note("one WAN copy per site: the other agents of each site took their index files from that copy (FROM PEERS); the .debs came through the payload sharing above")
	} else {
		d.note("some file left the vendor more than once for one site: an agent's apt asked for it before the site's first copy was announced to it (the apt coordinator waits for a fetcher only while it makes progress, docs/APT.md)")
	}
	return nil
}
