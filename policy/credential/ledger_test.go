package credential

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet", "issued.jsonl")
	if recs, err := ReadLedger(path); err != nil || len(recs) != 0 {
		t.Fatalf("missing ledger: %v %v", recs, err)
	}
	ca := newKey(t)
	node, _ := newNode(t)
	s1, err := NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := NewSerial()
	if s1 == s2 || s1 == 0 {
		t.Fatalf("serials %d %d", s1, s2)
	}
	for _, s := range []uint64{s1, s2} {
		if err := AppendLedger(path, IssuedFrom(issue(t, ca, node, "berlin", s), t0, "offline")); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := ReadLedger(path)
	if err != nil || len(recs) != 2 || recs[1].Serial != s2 || recs[0].NodeID != node {
		t.Fatalf("ledger: %+v %v", recs, err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"serial":`)
	f.Close()
	if _, err := ReadLedger(path); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("torn line: %v", err)
	}
}
