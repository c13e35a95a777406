// Package fleetstatus owns the fleet status document: what the fleet console
// publishes about every ring and update across all sites (nodes reporting,
// succeeded, failed, at which sites, and when the fleet first saw each
// update), so that ring gates with `scope: fleet` can count other sites'
// results and deferrals start at the same moment on every node.
//
// The document is the TUF target "fleet-status.json", signed by the
// delegated role "fleet-status" whose key the console holds and whose one
// path pattern is that target name (policy/tufrepo delegates it, policy/trust
// verifies it). A key that can sign it can only change the numbers gates read
// and the start of deferrals: it cannot approve, deny or pin anything, and
// it cannot make a node install what the admin's policy does not already
// let through.
//
// The package uses the standard library and policy only; Parse is strict
// (unknown fields, bad names and oversize lists are refused), as agents
// read the document from the network.
package fleetstatus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patchring/patchring/policy"
)

// Names of the delegated role and of its one target.
const (
	Role   = "fleet-status"
	Target = "fleet-status.json"
)

// Version is the document format this package writes and reads.
const Version = 1

// Limits on untrusted input.
const (
	MaxBytes   = 16 << 20
	MaxRings   = 64
	MaxUpdates = 20000
	MaxSites   = 10000
	maxName    = 256
)

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed fleet status document")

// Document is the fleet status the console signs.
type Document struct {
	V int `json:"v"`
	// Generated is when the console computed it.
	Generated time.Time `json:"generated"`
	// Rings counts, per ring, the nodes the console knows in it.
	Rings map[string]RingNodes `json:"rings"`
	// Updates lists each update some node reported an outcome for.
	Updates []Update `json:"updates"`
}

// RingNodes is how many nodes of a ring report, in all and per site.
type RingNodes struct {
	Nodes int            `json:"nodes"`
	Sites map[string]int `json:"sites,omitempty"`
}

// Update is one update's results across the fleet.
type Update struct {
	Source  string `json:"source"`
	Package string `json:"package"`
	Version string `json:"version"`
	// FirstSeen is when the fleet first saw the update: the earliest time
	// any node reported about it (an outcome's time, so never earlier than
	// a node saw it).
	FirstSeen time.Time `json:"first_seen"`
	// Rings counts the nodes of each ring by their latest outcome.
	Rings map[string]Counts `json:"rings"`
}

// Counts are nodes by their latest outcome with an update; Sites splits
// them per site.
type Counts struct {
	Succeeded int                   `json:"succeeded"`
	Failed    int                   `json:"failed"`
	Sites     map[string]SiteCounts `json:"sites,omitempty"`
}

// SiteCounts are one site's share of Counts.
type SiteCounts struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Key returns the update's identity as the policy names it.
func (u Update) Key() policy.UpdateKey {
	return policy.UpdateKey{Source: u.Source, Package: u.Package, Version: u.Version}
}

// Marshal returns the document's JSON, updates sorted, as the console signs it.
func (d *Document) Marshal() ([]byte, error) {
	c := *d
	c.V = Version
	c.Updates = append([]Update(nil), d.Updates...)
	sort.Slice(c.Updates, func(i, j int) bool {
		a, b := c.Updates[i], c.Updates[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Version < b.Version
	})
	if c.Rings == nil {
		c.Rings = map[string]RingNodes{}
	}
	if c.Updates == nil {
		c.Updates = []Update{}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return json.Marshal(&c)
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]*$`)

// checkName accepts 1 to maxName bytes of valid UTF-8 without control
// characters (a site may be empty: a node that names none).
func checkName(what, s string) error {
	empty := s == "" && strings.HasSuffix(what, "site")
	if (s == "" && !empty) || len(s) > maxName || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: %s %q: must be 1 to %d printable characters", ErrMalformed, what, s, maxName)
	}
	return nil
}

// Parse reads a document strictly: the whole input is one JSON object of
// this version, with no unknown fields, valid names, non-negative counts
// and no update listed twice.
func Parse(data []byte) (*Document, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrMalformed, len(data), MaxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the document", ErrMalformed)
	}
	if d.V != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, d.V, Version)
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *Document) check() error {
	if d.Generated.IsZero() {
		return fmt.Errorf("%w: no generated time", ErrMalformed)
	}
	if len(d.Rings) > MaxRings {
		return fmt.Errorf("%w: %d rings (at most %d)", ErrMalformed, len(d.Rings), MaxRings)
	}
	for ring, rn := range d.Rings {
		if err := checkName("ring", ring); err != nil {
			return err
		}
		if rn.Nodes < 0 || len(rn.Sites) > MaxSites {
			return fmt.Errorf("%w: ring %s: bad node count or too many sites", ErrMalformed, ring)
		}
		for site, n := range rn.Sites {
			if err := checkName("site", site); err != nil {
				return err
			}
			if n < 0 {
				return fmt.Errorf("%w: ring %s site %s: negative count", ErrMalformed, ring, site)
			}
		}
	}
	if len(d.Updates) > MaxUpdates {
		return fmt.Errorf("%w: %d updates (at most %d)", ErrMalformed, len(d.Updates), MaxUpdates)
	}
	seen := make(map[policy.UpdateKey]bool, len(d.Updates))
	for i, u := range d.Updates {
		where := fmt.Sprintf("updates[%d]", i)
		if err := checkName(where+" source", u.Source); err != nil {
			return err
		}
		if err := checkName(where+" package", u.Package); err != nil {
			return err
		}
		if len(u.Version) > maxName || !versionRE.MatchString(u.Version) {
			return fmt.Errorf("%w: %s version %q", ErrMalformed, where, u.Version)
		}
		if seen[u.Key()] {
			return fmt.Errorf("%w: %s: %s %s %s listed twice", ErrMalformed, where, u.Source, u.Package, u.Version)
		}
		seen[u.Key()] = true
		if len(u.Rings) > MaxRings {
			return fmt.Errorf("%w: %s: %d rings (at most %d)", ErrMalformed, where, len(u.Rings), MaxRings)
		}
		for ring, c := range u.Rings {
			if err := checkName(where+" ring", ring); err != nil {
				return err
			}
			if c.Succeeded < 0 || c.Failed < 0 || len(c.Sites) > MaxSites {
				return fmt.Errorf("%w: %s ring %s: negative count or too many sites", ErrMalformed, where, ring)
			}
			for site, sc := range c.Sites {
				if err := checkName(where+" site", site); err != nil {
					return err
				}
				if sc.Succeeded < 0 || sc.Failed < 0 {
					return fmt.Errorf("%w: %s ring %s site %s: negative count", ErrMalformed, where, ring, site)
				}
			}
		}
	}
	return nil
}

// View is a parsed document as gates and the engine read it. The zero
// View (and a nil one) knows nothing.
type View struct {
	doc     *Document
	updates map[policy.UpdateKey]*Update
}

// NewView indexes d for lookups.
func NewView(d *Document) *View {
	v := &View{doc: d, updates: make(map[policy.UpdateKey]*Update, len(d.Updates))}
	for i := range d.Updates {
		v.updates[d.Updates[i].Key()] = &d.Updates[i]
	}
	return v
}

// Generated is when the console computed the document (zero for a nil View).
func (v *View) Generated() time.Time {
	if v == nil || v.doc == nil {
		return time.Time{}
	}
	return v.doc.Generated
}

var _ policy.FleetView = (*View)(nil)

// Get returns ring's fleet-wide results for k (policy.FleetView): Total is
// the nodes of the ring the console knows.
func (v *View) Get(ring string, k policy.UpdateKey) policy.RingStats {
	if v == nil || v.doc == nil {
		return policy.RingStats{}
	}
	st := policy.RingStats{Total: v.doc.Rings[ring].Nodes}
	if u := v.updates[k]; u != nil {
		c := u.Rings[ring]
		st.Succeeded, st.Failed = c.Succeeded, c.Failed
	}
	return st
}

// FirstSeen returns when the fleet first saw k, if the document knows.
func (v *View) FirstSeen(k policy.UpdateKey) (time.Time, bool) {
	if v == nil || v.doc == nil {
		return time.Time{}, false
	}
	u := v.updates[k]
	if u == nil || u.FirstSeen.IsZero() {
		return time.Time{}, false
	}
	return u.FirstSeen, true
}
