package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// Delta turns one version of the database into a later one: the entries
// added or changed in full, the IDs removed, and the hashes of the
// canonical JSON before and after, so an agent that applies it checks it
// ends with exactly the database the admin signed.
type Delta struct {
	Format       int      `json:"format"`
	From         int64    `json:"from"`
	To           int64    `json:"to"`
	BaseSHA256   string   `json:"base_sha256"`
	ResultSHA256 string   `json:"result_sha256"`
	Built        string   `json:"built"`
	KEVCatalog   string   `json:"kev_catalog,omitempty"`
	Ecosystems   []string `json:"ecosystems"`
	Upsert       []Entry  `json:"upsert,omitempty"`
	Remove       []string `json:"remove,omitempty"`
}

// ErrDeltaBase means a delta does not start from the database it is
// applied to: fetch the full database instead.
var ErrDeltaBase = errors.New("delta does not apply to this database")

// Diff returns the delta from old to cur.
func Diff(old, cur *DB) (*Delta, error) {
	if cur.Version <= old.Version {
		return nil, fmt.Errorf("diff advisories: version %d is not newer than %d", cur.Version, old.Version)
	}
	ob, err := old.Marshal()
	if err != nil {
		return nil, fmt.Errorf("diff advisories: %w", err)
	}
	cb, err := cur.Marshal()
	if err != nil {
		return nil, fmt.Errorf("diff advisories: %w", err)
	}
	d := &Delta{Format: Format, From: old.Version, To: cur.Version, BaseSHA256: sha256Hex(ob), ResultSHA256: sha256Hex(cb),
		Built: cur.Built, KEVCatalog: cur.KEVCatalog, Ecosystems: cur.Ecosystems}
	i, j := 0, 0
	for i < len(old.Entries) || j < len(cur.Entries) {
		switch {
		case j == len(cur.Entries) || (i < len(old.Entries) && old.Entries[i].ID < cur.Entries[j].ID):
			d.Remove = append(d.Remove, old.Entries[i].ID)
			i++
		case i == len(old.Entries) || cur.Entries[j].ID < old.Entries[i].ID:
			d.Upsert = append(d.Upsert, cur.Entries[j])
			j++
		default:
			if !reflect.DeepEqual(old.Entries[i], cur.Entries[j]) {
				d.Upsert = append(d.Upsert, cur.Entries[j])
			}
			i++
			j++
		}
	}
	return d, nil
}

// Encode returns the delta as gzip-compressed JSON.
func (d *Delta) Encode() ([]byte, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode advisory delta: %w", err)
	}
	return gzipBytes(raw)
}

// DecodeDelta reads a delta written by Encode.
func DecodeDelta(data []byte) (*Delta, error) {
	raw, err := gunzip(data, "decode advisory delta")
	if err != nil {
		return nil, err
	}
	var d Delta
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("decode advisory delta: %w", err)
	}
	if d.Format != Format || d.To <= d.From || d.From <= 0 {
		return nil, fmt.Errorf("decode advisory delta: format %d, from %d to %d", d.Format, d.From, d.To)
	}
	for i := range d.Upsert {
		if err := d.Upsert[i].check(); err != nil {
			return nil, fmt.Errorf("decode advisory delta: %w", err)
		}
	}
	return &d, nil
}

// Apply returns base with the delta applied; baseSHA is the hash Decode
// returned for base. It fails with ErrDeltaBase when the delta starts
// elsewhere, and when the result's hash is not the one the delta names.
func (d *Delta) Apply(base *DB, baseSHA string) (*DB, string, error) {
	if base.Version != d.From || baseSHA != d.BaseSHA256 {
		return nil, "", fmt.Errorf("apply advisory delta %d->%d to version %d: %w", d.From, d.To, base.Version, ErrDeltaBase)
	}
	remove := make(map[string]bool, len(d.Remove))
	for _, id := range d.Remove {
		remove[id] = true
	}
	up := make(map[string]int, len(d.Upsert))
	for i, e := range d.Upsert {
		up[e.ID] = i
	}
	out := &DB{Format: Format, Version: d.To, Built: d.Built, KEVCatalog: d.KEVCatalog, Ecosystems: d.Ecosystems,
		Entries: make([]Entry, 0, len(base.Entries)+len(d.Upsert))}
	for _, e := range base.Entries {
		if remove[e.ID] {
			continue
		}
		if i, ok := up[e.ID]; ok {
			out.Entries = append(out.Entries, d.Upsert[i])
			delete(up, e.ID)
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	for _, i := range up {
		out.Entries = append(out.Entries, d.Upsert[i])
	}
	sort.Slice(out.Entries, func(i, j int) bool { return out.Entries[i].ID < out.Entries[j].ID })
	raw, err := out.Marshal()
	if err != nil {
		return nil, "", fmt.Errorf("apply advisory delta: %w", err)
	}
	if got := sha256Hex(raw); got != d.ResultSHA256 {
		return nil, "", fmt.Errorf("apply advisory delta %d->%d: result hash %s, the delta names %s", d.From, d.To, got, d.ResultSHA256)
	}
	if err := out.check(); err != nil {
		return nil, "", fmt.Errorf("apply advisory delta: %w", err)
	}
	return out, d.ResultSHA256, nil
}
