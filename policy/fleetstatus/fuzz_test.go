package fleetstatus

import "testing"

// FuzzParse feeds the agent-side parser arbitrary bytes: it must never
// panic, and what it accepts must marshal and parse again to the same.
func FuzzParse(f *testing.F) {
	good, err := sample().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"v":1,"generated":"2026-12-01T10:00:00Z","rings":{},"updates":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		again, err := d.Marshal()
		if err != nil {
			t.Fatalf("accepted document does not marshal: %v", err)
		}
		d2, err := Parse(again)
		if err != nil {
			t.Fatalf("marshalled document does not parse: %v", err)
		}
		if len(d2.Updates) != len(d.Updates) || len(d2.Rings) != len(d.Rings) {
			t.Fatal("round trip changed the document")
		}
	})
}
