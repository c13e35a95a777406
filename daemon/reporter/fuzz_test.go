package reporter

import (
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzParseBatch: an outbox answer from a peer never panics, and what
// parses encodes again.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"payload":"e30=","sig":"AAAA","cred":"AQI="}]`))
	f.Add([]byte(`[{"payload":null}]`))
	f.Add([]byte(`{"payload":"e30="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		envs, err := ParseBatch(b)
		if err != nil {
			return
		}
		if _, err := json.Marshal(envs); err != nil {
			t.Fatalf("parsed batch does not encode: %v", err)
		}
	})
}

// FuzzParsePath: a file path from a peer parses to N only in the one
// canonical form PathPrefix+N.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"reports/since/0", "reports/since/42", "reports/since/01", "reports/since/-1", "metadata/1.root.json", "reports/since/99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n, err := ParsePath(p)
		if err != nil {
			return
		}
		if p != PathPrefix+strconv.FormatUint(n, 10) {
			t.Fatalf("%q parsed as %d", p, n)
		}
	})
}
