package fleetstatus

import (
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy"
)

func sample() *Document {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &Document{Generated: at,
		Rings: map[string]RingNodes{"pilot": {Nodes: 4, Sites: map[string]int{"a": 4}}, "broad": {Nodes: 9, Sites: map[string]int{"b": 9}}},
		Updates: []Update{
			{Source: "apt", Package: "openssl", Version: "3.0.15-1~deb12u1", FirstSeen: at.Add(-time.Hour),
				Rings: map[string]Counts{"pilot": {Succeeded: 3, Failed: 1, Sites: map[string]SiteCounts{"a": {Succeeded: 3, Failed: 1}}}}},
			{Source: "apt", Package: "curl", Version: "7.88.1-10+deb12u8", FirstSeen: at.Add(-2 * time.Hour), Rings: map[string]Counts{}},
		}}
}

func TestRoundTripAndView(t *testing.T) {
	raw, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Updates[0].Package != "curl" {
		t.Errorf("updates not sorted: %v", d.Updates[0].Package)
	}
	v := NewView(d)
	k := policy.UpdateKey{Source: "apt", Package: "openssl", Version: "3.0.15-1~deb12u1"}
	if got := v.Get("pilot", k); got != (policy.RingStats{Succeeded: 3, Failed: 1, Total: 4}) {
		t.Errorf("pilot stats %+v", got)
	}
	if got := v.Get("broad", k); got != (policy.RingStats{Total: 9}) {
		t.Errorf("broad stats %+v", got)
	}
	if fs, ok := v.FirstSeen(k); !ok || !fs.Equal(sample().Updates[0].FirstSeen) {
		t.Errorf("first seen %v %v", fs, ok)
	}
	var nilView *View
	if got := nilView.Get("pilot", k); got != (policy.RingStats{}) {
		t.Errorf("nil view knows %+v", got)
	}
	if _, ok := nilView.FirstSeen(k); ok {
		t.Error("nil view knows a first seen")
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	for name, in := range map[string]string{
		"unknown field":  strings.Replace(s, `"v":1`, `"v":1,"approve":["openssl"]`, 1),
		"other version":  strings.Replace(s, `"v":1`, `"v":2`, 1),
		"negative count": strings.Replace(s, `"succeeded":3`, `"succeeded":-3`, 1),
		"trailing data":  s + `{}`,
		"duplicate":      strings.Replace(s, `"package":"curl","version":"7.88.1-10+deb12u8"`, `"package":"openssl","version":"3.0.15-1~deb12u1"`, 1),
		"control char":   strings.Replace(s, `"pilot"`, `"pi\u0007lot"`, 1),
		"bad version":    strings.Replace(s, `"version":"7.88.1-10+deb12u8"`, `"version":"../x"`, 1),
		"no generated":   strings.Replace(s, `"generated":"2026-12-01T10:00:00Z"`, `"generated":"0001-01-01T00:00:00Z"`, 1),
		"not json":       `fleet`,
	} {
		if in == s {
			t.Fatalf("%s: the case did not change the document", name)
		}
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
