package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
)

// NodeFacts is what evaluation knows about a node. The inventory fills it;
// tags come from the node's configuration.
type NodeFacts struct {
	NodeID   string   `json:"node_id"`
	Hostname string   `json:"hostname"`
	Site     string   `json:"site,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Headless bool     `json:"headless,omitempty"` // no interactive user session (servers, kiosks)

	OSID      string `json:"os_id,omitempty"`      // os-release ID, e.g. "debian"
	OSVersion string `json:"os_version,omitempty"` // os-release VERSION_ID, e.g. "12"
	Arch      string `json:"arch,omitempty"`       // dpkg architecture, e.g. "amd64"

	// Installed maps installed package names to versions. Only catalog
	// requires_package checks use it; nil means nothing is known installed.
	Installed map[string]string `json:"installed,omitempty"`
}

// bucketSalt separates ring buckets from any other hash of node IDs.
const bucketSalt = "patchring ring bucket v1\x00"

// Bucket returns the node's stable rollout bucket, 0..9999 (hundredths of a
// percent): the first 8 bytes of SHA-256(salt || nodeID) modulo 10000. It
// depends only on the node ID, so a node stays in its bucket across runs,
// versions and machines.
func Bucket(nodeID string) int {
	sum := sha256.Sum256([]byte(bucketSalt + nodeID))
	return int(binary.BigEndian.Uint64(sum[:8]) % 10000)
}

// percentBuckets turns a percentage with two decimals into a bucket bound.
func percentBuckets(pct float64) int {
	return int(math.Round(pct * 100))
}

// match reports whether s selects f, and why.
func (s *Selector) match(f NodeFacts) (bool, string) {
	var why []string
	for _, t := range s.Tags {
		if !slices.Contains(f.Tags, t) {
			return false, ""
		}
	}
	if len(s.Tags) > 0 {
		why = append(why, "has tags "+strings.Join(s.Tags, ", "))
	}
	if s.Hostname != "" {
		if ok, _ := path.Match(s.Hostname, f.Hostname); !ok {
			return false, ""
		}
		why = append(why, fmt.Sprintf("hostname %s matches %s", f.Hostname, s.Hostname))
	}
	if s.Site != "" {
		if ok, _ := path.Match(s.Site, f.Site); !ok {
			return false, ""
		}
		why = append(why, fmt.Sprintf("site %s matches %s", f.Site, s.Site))
	}
	if s.Percent > 0 {
		b := Bucket(f.NodeID)
		if b >= percentBuckets(s.Percent) {
			return false, ""
		}
		why = append(why, fmt.Sprintf("node ID bucket %s%% is below %s%%", formatPct(float64(b)/100), formatPct(s.Percent)))
	}
	return len(why) > 0, strings.Join(why, "; ")
}

func formatPct(p float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", p), "0"), ".")
}

// RingFor returns the ring a node belongs to and why: the first ring, in
// policy order, one of whose selectors matches the node, else the default
// ring. ring is "" only for a policy without rings.
func RingFor(p *Policy, f NodeFacts) (ring string, why string) {
	for i := range p.Rings {
		r := &p.Rings[i]
		for j := range r.Select {
			if ok, w := r.Select[j].match(f); ok {
				return r.Name, fmt.Sprintf("selected by rings[%d].select[%d]: %s", i, j, w)
			}
		}
	}
	for i := range p.Rings {
		if p.Rings[i].Default {
			return p.Rings[i].Name, fmt.Sprintf("no selector matched; %s (rings[%d]) is the default ring", p.Rings[i].Name, i)
		}
	}
	return "", "the policy has no default ring"
}

// ringIndex returns the index of the named ring, or -1.
func (p *Policy) ringIndex(name string) int {
	for i := range p.Rings {
		if p.Rings[i].Name == name {
			return i
		}
	}
	return -1
}

// Ring returns the named ring.
func (p *Policy) Ring(name string) (*Ring, bool) {
	if i := p.ringIndex(name); i >= 0 {
		return &p.Rings[i], true
	}
	return nil, false
}

// inRings reports whether ring is in list (an empty list means every ring).
func inRings(list []string, ring string) bool {
	return len(list) == 0 || slices.Contains(list, ring)
}

// globMatch matches a validated pattern; an empty pattern matches anything.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}
