package credential

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileName is the node's credential in the agent's state directory (the
// wire form, as issued).
const FileName = "node.credential"

// NewSerial returns a random serial. Serials are random so that the offline
// CA and any number of issuing services never need to agree on a counter.
func NewSerial() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("new serial: %w", err)
	}
	return binary.BigEndian.Uint64(b[:])>>1 | 1, nil
}

// Issued is one line of an issuer's ledger: what was signed, for whom, by
// which key and why. `patchring ca list` reads it; revoking by hostname
// looks the node IDs up in it.
type Issued struct {
	Serial    uint64    `json:"serial"`
	NodeID    string    `json:"node_id"`
	Hostname  string    `json:"hostname,omitempty"`
	Site      string    `json:"site"`
	Tags      []string  `json:"tags,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Signer    string    `json:"signer"`
	IssuedAt  time.Time `json:"issued_at"`
	// How is "offline" (ca sign), "token <id>" or "renewal".
	How string `json:"how,omitempty"`
}

// IssuedFrom describes c for the ledger.
func IssuedFrom(c *Credential, at time.Time, how string) Issued {
	return Issued{Serial: c.Serial, NodeID: c.NodeID, Hostname: c.Hostname, Site: c.Site, Tags: c.Tags,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Signer: c.Signer.String(), IssuedAt: at.UTC(), How: how}
}

// AppendLedger appends rec to the JSON-lines ledger at path, syncing it
// before returning so an issued credential is never unrecorded.
func AppendLedger(path string, rec Issued) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", path, err)
	}
	return f.Close()
}

// ReadLedger reads every record of the ledger at path; a missing ledger is
// empty. A line that does not decode (a torn last write) is reported with
// its number.
func ReadLedger(path string) ([]Issued, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	defer f.Close()
	var out []Issued
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var rec Issued
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return out, fmt.Errorf("ledger %s line %d: %w", path, n, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("ledger %s: %w", path, err)
	}
	return out, nil
}
