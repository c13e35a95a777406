package policy

import (
	"math"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"0d", 0, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"2w", 14 * 24 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1w2d3h4m5s", (9*24+3)*time.Hour + 4*time.Minute + 5*time.Second, true},
		{"1.5h", 90 * time.Minute, true},
		{"0.5d", 12 * time.Hour, true},
		{"500ms", 500 * time.Millisecond, true},
		{"90m", 90 * time.Minute, true},
		{"7 days", 0, false},
		{"7", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1y", 0, false},
		{"", 0, false},
		{"1..5h", 0, false},
		{"99999999999999d", 0, false},
		{"15251w", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseDuration(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatDurationRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{36 * time.Hour, "1d12h"},
		{14 * 24 * time.Hour, "14d"},
		{90 * time.Minute, "1h30m"},
		{1500 * time.Millisecond, "1s500ms"},
		{3, "3ns"},
		{math.MaxInt64, "106751d23h47m16s854.775807ms"},
	}
	for _, tc := range tests {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
		back, err := ParseDuration(FormatDuration(tc.d))
		if err != nil || back != tc.d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tc.d, back, err)
		}
	}
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "1.5h", "2w", "0", "500ms", "1µs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("round trip of %q (%v): %v, %v", s, d, back, err)
		}
	})
}

func TestRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		bytes int64
		canon string
		ok    bool
	}{
		{"8MB/s", 8_000_000, "8MB/s", true},
		{"512KiB/s", 512 << 10, "512KiB/s", true},
		{"1MiB/s", 1 << 20, "1MiB/s", true},
		{"100Mbit/s", 12_500_000, "12500KB/s", true},
		{"1.5GB/s", 1_500_000_000, "1500MB/s", true},
		{"unlimited", 0, "unlimited", true},
		{"0", 0, "unlimited", true},
		{"10B/s", 10, "10B/s", true},
		{"8MB", 0, "", false},
		{"8 parsecs/s", 0, "", false},
		{"-8MB/s", 0, "", false},
		{"0.1B/s", 0, "", false},
		{"/s", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			r, err := ParseRate(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseRate(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if r.BytesPerSecond() != tc.bytes || r.String() != tc.canon {
				t.Fatalf("ParseRate(%q) = %d (%s), want %d (%s)", tc.in, r, r, tc.bytes, tc.canon)
			}
			if back, err := ParseRate(r.String()); err != nil || back != r {
				t.Fatalf("round trip %q: %v %v", r.String(), back, err)
			}
		})
	}
}
