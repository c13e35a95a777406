package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Content index limits: up to contentExactMax hashes are listed exactly;
// beyond that a fixed-size Bloom filter stands in for them, so the message
// always fits a gossip packet.
const (
	contentExactMax = 16
	bloomBytes      = 512
	bloomBits       = bloomBytes * 8
	bloomMaxK       = 16 // each probe uses 2 bytes of the 32-byte hash
)

// ContentIndex is a compact, lossy description of the content (SHA-256
// hashes) a node holds: an exact list for a few items, a Bloom filter for
// more. It is a hint for peer selection: a true MayHave can be a false
// positive, and the node may have evicted the content since.
//
// The Bloom filter is written here rather than taken from a library because
// its items are already uniform SHA-256 hashes (the probe positions are
// read straight from the hash bytes) and its size is fixed, so decoding
// untrusted input never allocates by a size the sender chose.
type ContentIndex struct {
	count  int
	hashes [][32]byte // sorted, when count <= contentExactMax
	bloom  []byte     // bloomBytes long otherwise
	k      int
}

// NewContentIndex builds the index of the given hashes (duplicates ignored).
func NewContentIndex(hashes [][32]byte) ContentIndex {
	hs := slices.Clone(hashes)
	slices.SortFunc(hs, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	hs = slices.Compact(hs)
	if len(hs) == 0 {
		return ContentIndex{}
	}
	if len(hs) <= contentExactMax {
		return ContentIndex{count: len(hs), hashes: hs}
	}
	k := int(math.Round(float64(bloomBits) / float64(len(hs)) * math.Ln2))
	k = max(1, min(k, bloomMaxK))
	c := ContentIndex{count: len(hs), bloom: make([]byte, bloomBytes), k: k}
	for _, h := range hs {
		for i := range k {
			p := bloomPos(h, i)
			c.bloom[p/8] |= 1 << (p % 8)
		}
	}
	return c
}

func bloomPos(h [32]byte, i int) uint {
	return uint(binary.LittleEndian.Uint16(h[2*i:])) % bloomBits
}

// Len is the number of distinct hashes the node announced.
func (c ContentIndex) Len() int { return c.count }

// Exact reports whether the index lists its hashes exactly.
func (c ContentIndex) Exact() bool { return c.bloom == nil }

// Hashes returns the exact list, or nil when the index is a Bloom filter.
func (c ContentIndex) Hashes() [][32]byte {
	if !c.Exact() {
		return nil
	}
	return slices.Clone(c.hashes)
}

// MayHave reports whether the node may hold h (false positives possible
// when the index is a Bloom filter; never a false negative for what the
// node announced).
func (c ContentIndex) MayHave(h [32]byte) bool {
	if c.Exact() {
		_, ok := slices.BinarySearchFunc(c.hashes, h, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
		return ok
	}
	for i := range c.k {
		p := bloomPos(h, i)
		if c.bloom[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

// Equal reports whether two indexes describe the same announcement.
func (c ContentIndex) Equal(o ContentIndex) bool {
	if c.count != o.count || c.k != o.k || !bytes.Equal(c.bloom, o.bloom) || len(c.hashes) != len(o.hashes) {
		return false
	}
	for i := range c.hashes {
		if c.hashes[i] != o.hashes[i] {
			return false
		}
	}
	return true
}

func (c *ContentIndex) marshal() []byte {
	var b []byte
	b = appendUintField(b, 1, uint64(c.count))
	for _, h := range c.hashes {
		b = appendBytesField(b, 2, h[:])
	}
	if c.bloom != nil {
		b = appendBytesField(b, 3, c.bloom)
		b = appendUintField(b, 4, uint64(c.k))
	}
	return b
}

func unmarshalContentIndex(b []byte) (ContentIndex, error) {
	var c ContentIndex
	err := parseFields(b, func(f field) error {
		switch f.num {
		case 1:
			v, err := countField(f, "content count")
			c.count = v
			return err
		case 2:
			if len(c.hashes) >= contentExactMax {
				return fmt.Errorf("%w: more than %d content hashes", errOversized, contentExactMax)
			}
			v, err := f.bytes("content hash", 32)
			if err != nil {
				return err
			}
			if len(v) != 32 {
				return malformedf("content hash of %d bytes", len(v))
			}
			c.hashes = append(c.hashes, [32]byte(v))
		case 3:
			v, err := f.bytes("bloom filter", bloomBytes)
			if err != nil {
				return err
			}
			if len(v) != bloomBytes {
				return malformedf("bloom filter of %d bytes, want %d", len(v), bloomBytes)
			}
			c.bloom = slices.Clone(v)
		case 4:
			v, err := f.uint("bloom k")
			if err != nil {
				return err
			}
			if v < 1 || v > bloomMaxK {
				return malformedf("bloom k %d out of range", v)
			}
			c.k = int(v)
		}
		return nil
	})
	if err != nil {
		return ContentIndex{}, fmt.Errorf("decode content index: %w", err)
	}
	switch {
	case c.bloom != nil && len(c.hashes) > 0:
		return ContentIndex{}, malformedf("decode content index: both a list and a filter")
	case c.bloom != nil && c.k == 0:
		return ContentIndex{}, malformedf("decode content index: filter without k")
	case c.bloom == nil && c.k != 0:
		return ContentIndex{}, malformedf("decode content index: k without filter")
	case c.bloom == nil && c.count != len(c.hashes):
		return ContentIndex{}, malformedf("decode content index: count %d, %d hashes", c.count, len(c.hashes))
	case c.bloom != nil && c.count <= contentExactMax:
		return ContentIndex{}, malformedf("decode content index: filter for %d hashes", c.count)
	}
	if !slices.IsSortedFunc(c.hashes, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }) {
		return ContentIndex{}, malformedf("decode content index: hashes not sorted")
	}
	if len(c.hashes) == 0 {
		c.hashes = nil
	}
	return c, nil
}
