package config

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestStoreSize(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		in      string
		total   uint64 // the file system's size
		want    int64  // resolved cap
		wantErr string
	}{
		{"", 100 * gib, 10 * gib, ""},           // 10% of a big disk
		{"", 4 * gib, gib, ""},                  // at least 1 GiB...
		{"", gib, gib / 2, ""},                  // ...but at most half a small disk
		{"20GiB", 100 * gib, 20 * gib, ""},      //
		{"500MB", 100 * gib, 500e6, ""},         //
		{"1.5 GiB", 100 * gib, 3 * gib / 2, ""}, //
		{"15%", 100 * gib, 15 * gib, ""},        //
		{"unlimited", 100 * gib, 0, ""},         //
		{"100000000", 100 * gib, 100000000, ""}, //
		{"10MB", 0, 0, "is out of range; use at least 64MiB"},
		{"95%", 0, 0, "is not a share of the disk from 1% to 90%"},
		{"lots", 0, 0, "is not a size; use e.g. 20GiB"},
		{"-5GiB", 0, 0, "is out of range"},
		{"NaN%", 0, 0, "is not a share"},
	}
	for _, tt := range tests {
		z, err := ParseStoreSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStoreSize(%q) = %+v, %v; want error %q", tt.in, z, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseStoreSize(%q): %v", tt.in, err)
			continue
		}
		if got := z.Resolve(tt.total); got != tt.want {
			t.Errorf("ParseStoreSize(%q).Resolve(%d) = %d, want %d", tt.in, tt.total, got, tt.want)
		}
		if back, err := ParseStoreSize(z.String()); err != nil || back != z {
			t.Errorf("%q round trip: %+v, %v", tt.in, back, err)
		}
	}
}

func TestContentMaxSizeKeyAndFlag(t *testing.T) {
	c := Default()
	if err := Parse("test.yaml", []byte("content:\n  max_size: 8GiB\n"), &c); err != nil || c.Content.MaxSize != "8GiB" {
		t.Fatalf("Parse: %v, %+v", err, c.Content)
	}
	if err := Parse("test.yaml", []byte("content:\n  max_size: huge\n"), &c); err == nil || !strings.Contains(err.Error(), `config test.yaml: content.max_size: "huge" is not a size`) {
		t.Errorf("bad value: %v", err)
	}
	c = Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs, &c)
	if err := fs.Parse([]string{"--content-max-size", "25%"}); err != nil || c.Content.MaxSize != "25%" {
		t.Fatalf("flag: %v, %+v", err, c.Content)
	}
}

func FuzzParseStoreSize(f *testing.F) {
	for _, s := range []string{"", "20GiB", "500MB", "15%", "unlimited", "1e300", "0x10GiB", "-1%", " 64MiB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseStoreSize(s)
		if err != nil {
			return
		}
		if z.Bytes < 0 || z.Percent < 0 || z.Percent > 90 {
			t.Fatalf("%q gave %+v", s, z)
		}
		if r := z.Resolve(1 << 40); r < 0 {
			t.Fatalf("%q resolves to %d", s, r)
		}
	})
}
