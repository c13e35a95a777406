package unmanaged

import (
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/patchring/patchring/platform/neighbor"
)

// DefaultOUIFile is the IEEE MA-L registry as Debian's ieee-data package
// installs it.
const DefaultOUIFile = "/usr/share/ieee-data/oui.csv"

// OUI names the vendor of a MAC address from the IEEE registry (MA-L, the
// first three bytes). Its zero value reads DefaultOUIFile on first use; a
// missing registry leaves vendors empty.
type OUI struct {
	Path string // "" means DefaultOUIFile

	once   sync.Once
	byOUI  map[[3]byte]string
	err    error
	loaded int
}

// Vendor returns the organization the MAC's OUI is assigned to, "" when
// unknown, or "(locally administered)" for a locally administered address
// (random MACs of phones, virtual machines, containers).
func (o *OUI) Vendor(m neighbor.MAC) string {
	if m[0]&0x02 != 0 {
		return "(locally administered)"
	}
	o.once.Do(o.load)
	return o.byOUI[[3]byte(m[:3])]
}

// Err is why the registry could not be read, nil when it was (or was not
// tried yet).
func (o *OUI) Err() error { return o.err }

func (o *OUI) load() {
	path := o.Path
	if path == "" {
		path = DefaultOUIFile
	}
	f, err := os.Open(path)
	if err != nil {
		o.err = fmt.Errorf("oui registry: %w", err)
		return
	}
	defer f.Close()
	o.byOUI, o.err = parseOUI(io.LimitReader(f, 64<<20))
	if o.err != nil {
		o.err = fmt.Errorf("oui registry %s: %w", path, o.err)
	}
	o.loaded = len(o.byOUI)
}

// parseOUI reads the IEEE CSV (Registry,Assignment,Organization
// Name,Organization Address), keeping MA-L rows.
func parseOUI(r io.Reader) (map[[3]byte]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	out := map[[3]byte]string{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(rec) < 3 || rec[0] != "MA-L" || len(rec[1]) != 6 {
			continue
		}
		b, err := hex.DecodeString(rec[1])
		if err != nil {
			continue
		}
		out[[3]byte(b)] = strings.TrimSpace(rec[2])
	}
}
