package report

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func sample(key ed25519.PrivateKey) Record {
	pkgs := []Package{{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64"}, {Name: "openssl", Version: "3.0.11-1~deb12u2", Arch: "amd64"}}
	vulns := []Vuln{{ID: "CVE-2023-4911", Package: "libc6", Version: "2.36-9+deb12u4", Source: "glibc", FixedIn: "2.36-9+deb12u5", Severity: SeverityHigh, KEV: true, Fix: "available"}}
	seen := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	devs := []Device{{MAC: "52:54:00:12:34:56", Vendor: "QEMU", Addrs: []string{"192.168.1.20", "fe80::5054:ff:fe12:3456"}, Hostname: "printer",
		FirstSeen: seen.Add(-time.Hour), LastSeen: seen, SeenBy: []string{NodeID(key.Public().(ed25519.PublicKey))}}}
	return Record{
		Vulns: vulns, VulnsDigest: DigestVulns(vulns), Unmanaged: devs, UnmanagedDigest: DigestDevices(devs),
		Node: NodeID(key.Public().(ed25519.PublicKey)), Seq: 7, Time: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC),
		Site: "berlin", Hostname: "ws-01", Ring: "pilot", State: "idle", PolicyVersion: 12, Pending: 1,
		Outcomes: []Outcome{{Source: "apt", Package: "openssl", Version: "3.0.11-1~deb12u2", Result: ResultFailed, Reason: "dpkg: error processing", At: time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)}},
		Reboot:   Reboot{State: RebootDeferred, By: "alice", Deferrals: 2},
		Packages: pkgs, PackagesDigest: DigestPackages(pkgs), BytesFromPeers: 1000, BytesFromOrigin: 10,
	}
}

// TestNodeIDMatchesLibp2p checks the stdlib peer-ID code against libp2p.
func TestNodeIDMatchesLibp2p(t *testing.T) {
	for i := range 20 {
		key := testKey(t, byte(i))
		lk, err := crypto.UnmarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.IDFromPrivateKey(lk)
		if err != nil {
			t.Fatal(err)
		}
		if got := NodeID(key.Public().(ed25519.PublicKey)); got != want.String() {
			t.Fatalf("NodeID = %s, libp2p says %s", got, want)
		}
		pub, err := PublicKeyFromNodeID(want.String())
		if err != nil || !pub.Equal(key.Public()) {
			t.Fatalf("PublicKeyFromNodeID(%s) = %x, %v", want, pub, err)
		}
	}
	// An RSA or secp256k1 peer ID (a sha256 multihash) names no ed25519 key.
	for _, bad := range []string{"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "", "12D3KooW0", strings.Repeat("1", 60)} {
		if _, err := PublicKeyFromNodeID(bad); err == nil {
			t.Errorf("PublicKeyFromNodeID(%q) accepted", bad)
		}
	}
}

func TestSignOpenRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	env, err := Sign(sample(key), key)
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := json.Marshal(env)
	env2, err := ParseEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	r, pub, err := Open(env2)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) || r.Seq != 7 || r.Reboot.By != "alice" || len(r.Packages) != 2 || r.Outcomes[0].Reason != "dpkg: error processing" ||
		len(r.Vulns) != 1 || !r.Vulns[0].Urgent() || len(r.Unmanaged) != 1 || r.Unmanaged[0].Addrs[1] != "fe80::5054:ff:fe12:3456" {
		t.Fatalf("round trip lost data: %+v", r)
	}
	if env.Digest() != env2.Digest() {
		t.Fatal("digest differs between deliveries")
	}
}

func TestOpenRefuses(t *testing.T) {
	victim, attacker := testKey(t, 1), testKey(t, 2)
	good, err := Sign(sample(victim), victim)
	if err != nil {
		t.Fatal(err)
	}
	// A record naming the victim signed by the attacker: Sign refuses, so
	// build it by hand.
	forgedPayload := good.Payload
	forged := Envelope{Payload: forgedPayload, Sig: ed25519.Sign(attacker, signed(forgedPayload))}
	tampered := Envelope{Payload: []byte(strings.Replace(string(good.Payload), `"seq":7`, `"seq":8`, 1)), Sig: good.Sig}
	unsignedCtx := Envelope{Payload: good.Payload, Sig: ed25519.Sign(victim, good.Payload)}
	withExtra := func() Envelope {
		p := []byte(strings.Replace(string(good.Payload), `{"v":1`, `{"v":1,"command":"install"`, 1))
		return Envelope{Payload: p, Sig: ed25519.Sign(victim, signed(p))}
	}()
	badDigest := func() Envelope {
		r := sample(victim)
		r.V = Version
		r.PackagesDigest = strings.Repeat("0", 64)
		p, _ := json.Marshal(r)
		return Envelope{Payload: p, Sig: ed25519.Sign(victim, signed(p))}
	}()
	for name, c := range map[string]struct {
		env  Envelope
		want error
	}{
		"forged by another key": {forged, ErrSignature},
		"tampered":              {tampered, ErrSignature},
		"signature without ctx": {unsignedCtx, ErrSignature},
		"unknown field":         {withExtra, ErrMalformed},
		"digest mismatch":       {badDigest, ErrMalformed},
		"empty":                 {Envelope{}, ErrMalformed},
		"not json":              {Envelope{Payload: []byte("{"), Sig: good.Sig}, ErrMalformed},
	} {
		if _, _, err := Open(c.env); !errors.Is(err, c.want) {
			t.Errorf("%s: Open = %v, want %v", name, err, c.want)
		}
	}
	if _, err := Sign(sample(victim), attacker); err == nil {
		t.Error("Sign with a key that is not the node's accepted")
	}
}

func TestValidate(t *testing.T) {
	key := testKey(t, 3)
	for name, mut := range map[string]func(*Record){
		"zero seq":        func(r *Record) { r.Seq = 0 },
		"no site":         func(r *Record) { r.Site = "" },
		"control char":    func(r *Record) { r.Hostname = "a\nb" },
		"reboot state":    func(r *Record) { r.Reboot.State = "maybe" },
		"outcome result":  func(r *Record) { r.Outcomes[0].Result = "ok" },
		"package name":    func(r *Record) { r.Packages[0].Name = "../x"; r.PackagesDigest = DigestPackages(r.Packages) },
		"negative bytes":  func(r *Record) { r.BytesFromPeers = -1 },
		"long reason":     func(r *Record) { r.Outcomes[0].Reason = strings.Repeat("x", 2000) },
		"no time":         func(r *Record) { r.Time = time.Time{} },
		"vulns digest":    func(r *Record) { r.VulnsDigest = DigestVulns(nil) },
		"vulns no digest": func(r *Record) { r.VulnsDigest = "" },
		"vuln severity":   func(r *Record) { r.Vulns[0].Severity = "panic"; r.VulnsDigest = DigestVulns(r.Vulns) },
		"vuln fix":        func(r *Record) { r.Vulns[0].Fix = "soon"; r.VulnsDigest = DigestVulns(r.Vulns) },
		"vuln package":    func(r *Record) { r.Vulns[0].Package = "a b"; r.VulnsDigest = DigestVulns(r.Vulns) },
		"device digest":   func(r *Record) { r.Unmanaged[0].Hostname = "other" },
		"device mac": func(r *Record) {
			r.Unmanaged[0].MAC = "52-54-00-12-34-56"
			r.UnmanagedDigest = DigestDevices(r.Unmanaged)
		},
		"device addr": func(r *Record) {
			r.Unmanaged[0].Addrs = []string{"10.0.0.300"}
			r.UnmanagedDigest = DigestDevices(r.Unmanaged)
		},
		"device seen by": func(r *Record) {
			r.Unmanaged[0].SeenBy = []string{"alice"}
			r.UnmanagedDigest = DigestDevices(r.Unmanaged)
		},
		"device no first seen": func(r *Record) {
			r.Unmanaged[0].FirstSeen = time.Time{}
			r.UnmanagedDigest = DigestDevices(r.Unmanaged)
		},
	} {
		r := sample(key)
		mut(&r)
		if _, err := Sign(r, key); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Sign = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzOpen feeds arbitrary envelopes to the parser: it must never panic,
// and whatever it accepts must re-validate and carry a key matching its ID.
func FuzzOpen(f *testing.F) {
	key := testKey(f, 4)
	env, err := Sign(sample(key), key)
	if err != nil {
		f.Fatal(err)
	}
	wire, _ := json.Marshal(env)
	f.Add(wire)
	f.Add([]byte(`{"payload":"e30=","sig":""}`))
	f.Add([]byte(`{}`))
	cleared := sample(key)
	cleared.Vulns, cleared.VulnsDigest, cleared.Unmanaged, cleared.UnmanagedDigest = nil, DigestVulns(nil), nil, DigestDevices(nil)
	if env, err := Sign(cleared, key); err == nil {
		wire, _ := json.Marshal(env)
		f.Add(wire)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		r, pub, err := Open(e)
		if err != nil {
			return
		}
		if NodeID(pub) != r.Node {
			t.Fatalf("accepted record of %s with key of %s", r.Node, NodeID(pub))
		}
		if err := r.validate(); err != nil {
			t.Fatalf("accepted an invalid record: %v", err)
		}
	})
}

// FuzzNodeID: decoding never panics and accepts only canonical IDs.
func FuzzNodeID(f *testing.F) {
	f.Add(NodeID(testKey(f, 5).Public().(ed25519.PublicKey)))
	f.Add("1111")
	f.Add("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	f.Fuzz(func(t *testing.T, id string) {
		pub, err := PublicKeyFromNodeID(id)
		if err == nil && NodeID(pub) != id {
			t.Fatalf("accepted non-canonical %q", id)
		}
	})
}
