package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUnmanagedDefaults(t *testing.T) {
	t.Parallel()
	p := mustParse(t, base)
	u := p.Unmanaged
	if !u.UnmanagedOn() || u.EffectiveInterval() != DefaultUnmanagedInterval || u.EffectiveExpiry() != DefaultUnmanagedExpiry {
		t.Fatalf("defaults: %+v", u)
	}
	if n, s := u.Caps(); n != DefaultUnmanagedPerNode || s != DefaultUnmanagedPerSite {
		t.Fatalf("caps %d %d", n, s)
	}
	if got := u.SweepSubnets("branch", []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")}); got != nil {
		t.Fatalf("the sweep is off by default, got %v", got)
	}
	js, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "unmanaged") {
		t.Fatalf("a policy without the section signs without it: %s", js)
	}
}

func TestUnmanagedParse(t *testing.T) {
	t.Parallel()
	p := mustParse(t, base+`unmanaged:
  interval: 5s
  expiry: 1m
  max_per_node: 100
  max_per_site: 300
  sweep:
    sites: [branch]
    subnets: [10.200.0.0/16]
    rate: 50
    every: 1h
`)
	u := p.Unmanaged
	if u.EffectiveInterval() != 5*time.Second || u.EffectiveExpiry() != time.Minute || u.Sweep.EffectiveRate() != 50 || u.Sweep.EffectiveEvery() != time.Hour {
		t.Fatalf("parsed %+v %+v", u, u.Sweep)
	}
	attached := []netip.Prefix{
		netip.MustParsePrefix("10.200.1.10/24"), // inside: swept
		netip.MustParsePrefix("10.9.0.1/24"),    // outside the listed subnets
		netip.MustParsePrefix("10.200.0.1/16"),  // wider than /20
		netip.MustParsePrefix("fe80::1/64"),     // not IPv4
	}
	if got, want := u.SweepSubnets("branch", attached), []netip.Prefix{netip.MustParsePrefix("10.200.1.0/24")}; !slices.Equal(got, want) {
		t.Fatalf("SweepSubnets = %v, want %v", got, want)
	}
	if got := u.SweepSubnets("hq", attached); got != nil {
		t.Fatalf("another site sweeps: %v", got)
	}
	// The signed form carries the section and reads back the same.
	js, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseJSON(js, "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if q.Unmanaged.Sweep.Rate != 50 || q.Unmanaged.EffectiveExpiry() != time.Minute || !q.Unmanaged.UnmanagedOn() {
		t.Fatalf("round trip: %+v", q.Unmanaged)
	}
	off := mustParse(t, base+"unmanaged:\n  enabled: false\n")
	if off.Unmanaged.UnmanagedOn() {
		t.Fatal("enabled: false left discovery on")
	}
}

func TestUnmanagedProblems(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"sweep without scope", "unmanaged:\n  sweep: {rate: 5}\n", "unmanaged.sweep: names no sites and no subnets"},
		{"bad subnet", "unmanaged:\n  sweep: {subnets: [10.0.0.1/24]}\n", `"10.0.0.1/24" has host bits set; write 10.0.0.0/24`},
		{"ipv6 subnet", "unmanaged:\n  sweep: {subnets: [\"fd00::/64\"]}\n", "is not IPv4"},
		{"rate", "unmanaged:\n  sweep: {sites: [a], rate: 5000}\n", "unmanaged.sweep.rate: 5000 probes/s is out of range"},
		{"expiry below two intervals", "unmanaged:\n  interval: 1m\n  expiry: 90s\n", "unmanaged.expiry: 1m30s is shorter than two intervals"},
		{"cap", "unmanaged:\n  max_per_node: 100000\n", "unmanaged.max_per_node: 100000 is out of range"},
		{"sweep while off", "unmanaged:\n  enabled: false\n  sweep: {sites: [a]}\n", "unmanaged.sweep: is set while unmanaged.enabled is false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(base+tc.src), "policy.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
