package vercmp

import (
	"errors"
	"testing"
)

func TestDebOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{"equal", "1.0", "1.0", 0},
		{"zero epoch is no epoch", "0:1.0-1", "1.0-1", 0},
		{"leading zeros ignored", "1.0", "1.00", 0},
		{"leading zeros in revision", "1-001", "1-1", 0},
		{"numeric", "1.2", "1.10", -1},
		{"epoch wins", "1:0.1", "9.9", 1},
		{"epoch numeric", "10:1", "9:1", 1},
		{"tilde before end", "1.0~rc1", "1.0", -1},
		{"double tilde first", "1.0~~", "1.0~", -1},
		{"tilde before letters", "1.0~a", "1.0a", -1},
		{"letters after end", "1.0a", "1.0", 1},
		{"letters before non-letters", "1.0a", "1.0+", -1},
		{"plus after dot", "1.0+", "1.0.", -1},
		{"revision decides", "1.0-1", "1.0-2", -1},
		{"no revision equals revision 0", "1.0", "1.0-0", 0},
		{"no revision before revision 1", "1.0", "1.0-1", -1},
		{"revision tilde", "1.0-1~bpo1", "1.0-1", -1},
		{"hyphen in upstream", "1.0-beta-2", "1.0-beta-10", -1},
		{"colon in upstream", "1:1:2-3", "1:1:10-3", -1},
		{"debian security", "2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{"big numbers", "123456789012345678901234567890", "123456789012345678901234567891", -1},
		{"case sensitive", "1.0A", "1.0a", -1},
		{"trailing blanks trimmed", " 1.0\t", "1.0", 0},
		{"plus sign epoch", "+1:2", "1:2", 0},
		{"negative zero epoch", "-0:2", "2", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Deb(tt.a, tt.b)
			if err != nil {
				t.Fatalf("Deb(%q, %q): %v", tt.a, tt.b, err)
			}
			if got != tt.want {
				t.Fatalf("Deb(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if back, _ := Deb(tt.b, tt.a); back != -tt.want {
				t.Fatalf("Deb(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, back, -tt.want)
			}
		})
	}
}

func TestParseDebInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		reason  string
		warning bool
	}{
		{"empty", "", "version string is empty", false},
		{"blank", " \t", "version string is empty", false},
		{"embedded space", "1.0 2", "version string has embedded spaces", false},
		{"empty epoch", ":1.0", "epoch in version is empty", false},
		{"letter epoch", "a:1.0", "epoch in version is empty", false},
		{"epoch not number", "1a:1.0", "epoch in version is not number", false},
		{"negative epoch", "-1:1.0", "epoch in version is negative", false},
		{"huge epoch", "2147483648:1", "epoch in version is too big", false},
		{"overflowing epoch", "99999999999999999999:1", "epoch in version is too big", false},
		{"nothing after colon", "1:", "nothing after colon in version number", false},
		{"only blank after colon", "1: ", "version number is empty", false},
		{"empty revision", "1.0-", "revision number is empty", false},
		{"empty upstream", "-1", "version number is empty", false},
		{"empty upstream after epoch", "1:-1", "version number is empty", false},
		{"nul", "1\x00", "version string contains a NUL byte", false},
		{"starts with letter", "a1.0", "version number does not start with digit", true},
		{"underscore", "1_0", "invalid character in version number", true},
		{"colon in revision", "1:1-1:2", "invalid character in revision number", true},
		{"hyphen-free bad revision", "1-a_b", "invalid character in revision number", true},
		{"utf8", "1.0é", "invalid character in version number", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDeb(tt.in)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseDeb(%q) error = %v, want *SyntaxError", tt.in, err)
			}
			if se.Reason != tt.reason || se.Warning != tt.warning {
				t.Fatalf("ParseDeb(%q) = %q warning=%v, want %q warning=%v", tt.in, se.Reason, se.Warning, tt.reason, tt.warning)
			}
			if _, err := Deb(tt.in, "1"); err == nil {
				t.Fatalf("Deb(%q, 1) gave no error", tt.in)
			}
		})
	}
}

func TestParseDebFields(t *testing.T) {
	t.Parallel()
	v, err := ParseDeb("2:1.0-beta-3+deb12u1")
	if err != nil {
		t.Fatal(err)
	}
	want := DebVersion{Epoch: 2, Upstream: "1.0-beta", Revision: "3+deb12u1"}
	if v != want {
		t.Fatalf("ParseDeb = %+v, want %+v", v, want)
	}
	if v.String() != "2:1.0-beta-3+deb12u1" {
		t.Fatalf("String() = %q", v.String())
	}
}
