package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written the way admins write spans of time:
// Go durations plus the units d (24h) and w (7d), e.g. "7d", "36h", "2w",
// "1d12h", "90m". It marshals to JSON as its canonical string (FormatDuration).
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the canonical form, e.g. "7d", "1d12h", "30m".
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// MarshalJSON encodes d as its canonical string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON decodes a duration string such as "7d".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"7d\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var errNotDuration = errors.New("not a duration")

// ParseDuration parses a non-negative duration made of number+unit parts,
// where units are those of time.ParseDuration (ns, us, µs, ms, s, m, h) plus
// d (24h) and w (7d): "7d", "36h", "2w", "1d12h", "1.5h", "0".
func ParseDuration(s string) (time.Duration, error) {
	in := s
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration: %w", errNotDuration)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("%q: each part needs a number and a unit: %w", in, errNotDuration)
		}
		// The standard library parses each part exactly (fractions and
		// overflow included); d and w are read as hours and scaled.
		mult := time.Duration(1)
		switch unit {
		case "d":
			unit, mult = "h", 24
		case "w":
			unit, mult = "h", 7*24
		}
		v, err := time.ParseDuration(num + unit)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%q: bad part %q: %w", in, num+unit, errNotDuration)
		}
		if v > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q: too long: %w", in, errNotDuration)
		}
		v *= mult
		if total > math.MaxInt64-v {
			return 0, fmt.Errorf("%q: too long: %w", in, errNotDuration)
		}
		total += v
	}
	return total, nil
}

// FormatDuration writes d in the form ParseDuration reads, using d, h, m, s
// and a Go-style sub-second remainder: 36h -> "1d12h", 0 -> "0s".
// ParseDuration(FormatDuration(d)) == d for every d >= 0.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		if d == math.MinInt64 {
			return time.Duration(d).String()
		}
		d = -d
	}
	for _, u := range []struct {
		unit string
		size time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.size; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.unit)
			d -= n * u.size
		}
	}
	if d > 0 {
		b.WriteString(d.String()) // < 1s: "500ms", "1.5µs", "3ns"
	}
	return b.String()
}

// humanDuration is FormatDuration rounded to the minute, for reasons
// ("deferral ends in 2d4h").
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	return FormatDuration(d.Round(time.Minute))
}
