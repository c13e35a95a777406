package site

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
)

// Member is a live member of this node's site.
type Member struct {
	// ID is the node ID (the libp2p peer ID in string form).
	ID string
}

// weight is the rendezvous weight of member id for key: the first 8 bytes
// of SHA-256(key, 0, id). Every node computes the same weights.
func weight(key, id string) uint64 {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Rank returns the members in rendezvous order for key, highest weight first
// (ties, which need a SHA-256 collision on 64 bits, by ID). Duplicate IDs are
// kept once. The first member is the site's WAN fetcher for key; if it
// leaves, every node agrees the second one is next.
func Rank(key string, members []Member) []Member {
	type ranked struct {
		m Member
		w uint64
	}
	seen := map[string]bool{}
	rs := make([]ranked, 0, len(members))
	for _, m := range members {
		if seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		rs = append(rs, ranked{m, weight(key, m.ID)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		return strings.Compare(a.m.ID, b.m.ID)
	})
	out := make([]Member, len(rs))
	for i, r := range rs {
		out[i] = r.m
	}
	return out
}

// Choose returns the site's WAN fetcher for key, false if there are no
// members.
func Choose(key string, members []Member) (Member, bool) {
	r := Rank(key, members)
	if len(r) == 0 {
		return Member{}, false
	}
	return r[0], true
}
