package membership

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/gossip"
)

func fileHash(name string) content.Hash { return sha256.Sum256([]byte(name)) }

// TestSharedFilesGrowsWithTheSameCycle: a fetcher's progress, as the apt
// coordinator reads it, grows when the fetcher announces files this node
// holds or is downloading, and not when it announces unrelated ones.
func TestSharedFilesGrowsWithTheSameCycle(t *testing.T) {
	var held []content.Info
	for i := range 10 {
		held = append(held, content.Info{Hash: fileHash(fmt.Sprint("mine-", i))})
	}
	partials := []content.Hash{fileHash("downloading")}
	announce := func(hs ...content.Hash) gossip.ContentIndex {
		var raw [][32]byte
		for _, h := range hs {
			raw = append(raw, h)
		}
		return gossip.NewContentIndex(raw)
	}
	tests := []struct {
		name string
		idx  gossip.ContentIndex
		want int
	}{
		{"nothing announced", announce(), 0},
		{"unrelated files only", announce(fileHash("other-1"), fileHash("other-2")), 0},
		{"two of mine and others", announce(held[3].Hash, fileHash("other-1"), held[7].Hash), 2},
		{"one of mine and my download", announce(held[0].Hash, partials[0]), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sharedFiles(tc.idx, partials, held); got != tc.want {
				t.Errorf("sharedFiles = %d, want %d", got, tc.want)
			}
		})
	}
	// Only the most recently used aptProgressFiles count.
	many := make([]content.Info, aptProgressFiles+1)
	for i := range many {
		many[i] = content.Info{Hash: fileHash(fmt.Sprint("old-", i))}
	}
	if got := sharedFiles(announce(many[aptProgressFiles].Hash), nil, many); got != 0 {
		t.Errorf("a file past the most recent %d counted: %d", aptProgressFiles, got)
	}
}
