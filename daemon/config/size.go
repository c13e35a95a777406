package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ContentDefaultPercent, ContentMinDefault: the content store's cap when
// content.max_size is not set is ContentDefaultPercent of the file
// system holding the state dir, but at least ContentMinDefault (or half of
// a smaller file system).
const (
	ContentDefaultPercent = 10
	ContentMinDefault     = 1 << 30
)

// StoreSize is a content store cap: bytes, a share of the file system, or
// no cap. The zero value is the default (ContentDefaultPercent).
type StoreSize struct {
	Bytes     int64   // > 0: this many bytes
	Percent   float64 // > 0: this share of the file system
	Unlimited bool
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseStoreSize reads "20GiB", "500MB", "123456" (bytes), "15%" (of the
// file system), "unlimited" or "" (the default).
func ParseStoreSize(s string) (StoreSize, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return StoreSize{}, nil
	case s == "unlimited":
		return StoreSize{Unlimited: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || math.IsNaN(p) || p < 1 || p > 90 {
			return StoreSize{}, fmt.Errorf("%q is not a share of the disk from 1%% to 90%%", s)
		}
		return StoreSize{Percent: p}, nil
	}
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return StoreSize{}, fmt.Errorf("%q is not a size; use e.g. 20GiB, 500MB, 15%% of the disk or unlimited", s)
	}
	b := v * float64(mult)
	if b < 64<<20 || b > float64(math.MaxInt64/2) {
		return StoreSize{}, fmt.Errorf("%q is out of range; use at least 64MiB", s)
	}
	return StoreSize{Bytes: int64(b)}, nil
}

// Resolve returns the cap in bytes for a file system of total bytes; 0
// means no cap.
func (z StoreSize) Resolve(total uint64) int64 {
	switch {
	case z.Unlimited:
		return 0
	case z.Bytes > 0:
		return z.Bytes
	}
	p := z.Percent
	if p == 0 {
		p = ContentDefaultPercent
	}
	b := int64(float64(total) * p / 100)
	if z.Percent == 0 {
		b = max(b, min(ContentMinDefault, int64(total/2)))
	}
	return max(b, 1)
}

// String writes z as ParseStoreSize reads it.
func (z StoreSize) String() string {
	switch {
	case z.Unlimited:
		return "unlimited"
	case z.Bytes > 0:
		return strconv.FormatInt(z.Bytes, 10) + "B"
	case z.Percent > 0:
		return strconv.FormatFloat(z.Percent, 'f', -1, 64) + "%"
	}
	return ""
}
