package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestGossipDiscoveryDefaults(t *testing.T) {
	c := Default()
	if err := Parse("test.yaml", []byte("gossip:\n  enabled: true\n  key_file: /k\n"), &c); err != nil {
		t.Fatal(err)
	}
	if !c.Gossip.Discovery || c.Gossip.DiscoveryPort != DefaultDiscoveryPort || len(c.Gossip.DiscoveryTargets) != 0 {
		t.Fatalf("gossip %+v: want discovery on, port %d, no targets", c.Gossip, DefaultDiscoveryPort)
	}
}

func TestGossipDiscoverySettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		check   func(g Gossip) bool
		wantErr string // substring; "" means valid
	}{
		{name: "off", yaml: "gossip:\n  discovery: false\n", check: func(g Gossip) bool { return !g.Discovery }},
		{name: "port and targets", yaml: "gossip:\n  discovery_port: 17947\n  discovery_targets: [10.1.255.255, 10.2.0.9]\n",
			check: func(g Gossip) bool {
				return g.DiscoveryPort == 17947 && slices.Equal(g.DiscoveryTargets, []string{"10.1.255.255", "10.2.0.9"})
			}},
		{name: "gossip on the discovery port with discovery off", yaml: "gossip:\n  listen: 0.0.0.0:7947\n  discovery: false\n",
			check: func(g Gossip) bool { return g.Listen == "0.0.0.0:7947" }},
		{name: "port 0", yaml: "gossip:\n  discovery_port: 0\n", wantErr: "gossip.discovery_port: 0 is not a UDP port"},
		{name: "port too high", yaml: "gossip:\n  discovery_port: 70000\n", wantErr: "gossip.discovery_port: 70000 is not a UDP port"},
		{name: "same port as gossip", yaml: "gossip:\n  listen: 10.0.0.1:7947\n", wantErr: "gossip.discovery_port: 7947 is also the gossip port"},
		{name: "same port as the default gossip port", yaml: "gossip:\n  discovery_port: 7946\n", wantErr: "7946 is also the gossip port"},
		{name: "bad listen", yaml: "gossip:\n  listen: nonsense\n", wantErr: "gossip.listen: \"nonsense\" is not host:port"},
		{name: "listen on a name", yaml: "gossip:\n  listen: localhost:7946\n", wantErr: "gossip.listen: \"localhost:7946\": the host must be an IP address"},
		{name: "hostname target", yaml: "gossip:\n  discovery_targets: [broadcast.lan]\n", wantErr: "gossip.discovery_targets[0]: \"broadcast.lan\" is not an IPv4 address"},
		{name: "ipv6 target", yaml: "gossip:\n  discovery_targets: [10.1.255.255, \"ff02::1\"]\n", wantErr: "gossip.discovery_targets[1]: \"ff02::1\" is not an IPv4 address"},
		{name: "wrong type", yaml: "gossip:\n  discovery: sometimes\n", wantErr: "test.yaml:2:"},
		{name: "unknown key", yaml: "gossip:\n  discover: true\n", wantErr: "unknown key \"gossip.discover\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			err := Parse("test.yaml", []byte(tc.yaml), &c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tc.check(c.Gossip) {
				t.Fatalf("gossip settings %+v", c.Gossip)
			}
		})
	}
}

func TestGossipDiscoveryFlags(t *testing.T) {
	c := Default()
	fs := pflag.NewFlagSet("patchringd", pflag.ContinueOnError)
	BindFlags(fs, &c)
	if err := fs.Parse([]string{"--gossip-discovery=false", "--gossip-discovery-port", "9999", "--gossip-discovery-targets", "10.1.255.255,10.2.0.9"}); err != nil {
		t.Fatal(err)
	}
	if c.Gossip.Discovery || c.Gossip.DiscoveryPort != 9999 || !slices.Equal(c.Gossip.DiscoveryTargets, []string{"10.1.255.255", "10.2.0.9"}) {
		t.Fatalf("gossip settings %+v", c.Gossip)
	}
	if err := c.Validate("flags"); err != nil {
		t.Fatal(err)
	}
}
