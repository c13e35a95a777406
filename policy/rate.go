package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rate is a transfer rate cap in bytes per second; 0 means unlimited. Admins
// write it as "8MB/s", "512KiB/s", "100Mbit/s" or "unlimited"; it marshals
// to JSON as its canonical string (FormatRate).
type Rate int64

// BytesPerSecond returns r in bytes per second (0: unlimited).
func (r Rate) BytesPerSecond() int64 { return int64(r) }

// String returns the canonical form, e.g. "8MB/s", "unlimited".
func (r Rate) String() string { return FormatRate(r) }

// MarshalJSON encodes r as its canonical string.
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON decodes a rate string such as "8MB/s".
func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rate must be a string like \"8MB/s\": %w", err)
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

var rateUnits = []struct {
	name string
	size float64
}{
	// Longest names first so that "KiB" is not read as "K" + "iB".
	{"Gbit", 1e9 / 8}, {"Mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"Kbit", 1e3 / 8},
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3},
	{"B", 1},
}

// ParseRate parses "N<unit>/s" where unit is B, KB (kB), MB, GB (powers of
// 1000), KiB, MiB, GiB (powers of 1024) or kbit, Mbit, Gbit; "unlimited" and
// "0" mean no cap.
func ParseRate(s string) (Rate, error) {
	if s == "unlimited" || s == "0" {
		return 0, nil
	}
	body, ok := strings.CutSuffix(s, "/s")
	if !ok {
		return 0, fmt.Errorf("%q is not a rate: it must end in /s", s)
	}
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(body, u.name)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || num == "" || num[0] < '0' || num[0] > '9' || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("%q is not a rate: bad number %q", s, num)
		}
		v := math.Round(f * u.size)
		if v >= math.MaxInt64/2 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		if v < 1 && f > 0 {
			return 0, fmt.Errorf("%q is below 1 byte per second", s)
		}
		return Rate(v), nil
	}
	return 0, fmt.Errorf("%q is not a rate: unknown unit", s)
}

// FormatRate writes r in the largest decimal unit that divides it exactly,
// else the largest binary one, else bytes: 8000000 -> "8MB/s",
// 1048576 -> "1MiB/s", 0 -> "unlimited".
func FormatRate(r Rate) string {
	if r <= 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(r)%u.size == 0 {
			return strconv.FormatInt(int64(r)/u.size, 10) + u.name + "/s"
		}
	}
	return strconv.FormatInt(int64(r), 10) + "B/s"
}
