//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

// issuingPort is the issuing service's port on the origin host.
const issuingPort = "8446"

// issuing is the fleet's issuing service, run in the origin's namespace:
// an issuing key the CA delegated (tufrepo.CreateIssuer, what `patchring
// ca issuer create` runs) and policy/enroll's Server, what `patchring ca
// serve --repo` serves, reading fleet.json from the repository afresh for
// every request. Its tokens are created like `patchring enroll-token
// create` creates them.
type issuing struct {
	data  string
	store *enroll.Store
	root  []byte
	url   string // as the site sees it
	dir   string
}

// repoFleet reads the fleet document from the origin's repository
// directory for every request (as `patchring ca serve --repo` does).
type repoFleet struct{ dir string }

func (f repoFleet) Fleet(context.Context) (*credential.Trust, error) {
	r, err := tufrepo.Open(f.dir, "", "")
	if err != nil {
		return nil, err
	}
	doc, err := r.FleetDocument()
	if err != nil {
		return nil, err
	}
	return credential.NewTrust(&doc)
}

// startIssuing delegates an issuing key for site branch and serves the
// issuing service in the origin's namespace until the test ends.
func (s *testSite) startIssuing(t testing.TB) *issuing {
	t.Helper()
	is := &issuing{data: filepath.Join(s.dir, "ca-data"), dir: filepath.Join(s.dir, "tokens"), url: "http://" + originIP + ":" + issuingPort}
	_, key, _, err := s.origin.tuf.CreateIssuer(tufrepo.IssuerSpec{Name: "branch-1", Sites: []string{"branch"}, Valid: 24 * time.Hour, OutDir: filepath.Join(s.dir, "issuer-keys")})
	if err != nil {
		t.Fatal(err)
	}
	if is.store, err = enroll.OpenStore(is.data); err != nil {
		t.Fatal(err)
	}
	srv, err := enroll.NewServer(enroll.ServerConfig{Store: is.store, DataDir: is.data, IssuerKey: key.Private,
		Fleet: repoFleet{dir: s.origin.tufDir}, Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s.net.origin, originIP+":"+issuingPort, srv)
	if is.root, err = os.ReadFile(s.origin.rootFile); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(is.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return is
}

// token creates a token for site branch with tags, valid for an hour, and
// writes it to a file (mode 0600), as `patchring enroll-token create
// --out` does.
func (is *issuing) token(t testing.TB, name string, tags []string, uses int) string {
	t.Helper()
	return is.tokenFor(t, name, tags, uses, time.Hour, is.root)
}

// tokenFor is token with the expiry and the fleet root the token carries;
// with another fleet's root it is that fleet's token, unknown here.
func (is *issuing) tokenFor(t testing.TB, name string, tags []string, uses int, ttl time.Duration, root []byte) string {
	t.Helper()
	id, secret, err := enroll.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	tok := &enroll.Token{ID: id, Secret: secret, Origin: "http://" + originIP + ":8080", Service: is.url, Root: root}
	str, err := tok.String()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(is.dir, name+".token")
	if err := atomicfile.WriteFile(file, []byte(str+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if string(root) != string(is.root) {
		return file // another fleet's token: its service has the record
	}
	now := time.Now().UTC()
	if err := is.store.Add(enroll.TokenRecord{ID: id, SecretHash: enroll.HashSecret(secret), Fleet: tok.FleetID(), Site: "branch",
		Tags: tags, Uses: uses, UsesLeft: uses, Created: now, Expires: now.Add(ttl)}); err != nil {
		t.Fatal(err)
	}
	return file
}

// policyByTags: rings chosen by tags. lab installs at once; pilot once a
// lab node succeeded; broad (no tags) waits a day.
const policyByTags = `schema: 1
name: by-tags
expires: 2035-01-01T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
    defer: 0s
  - name: pilot
    select: [{tags: [pilot]}]
    defer: 0s
    gates: [{ring: lab, min_success: 100%, min_nodes: 1}]
  - name: broad
    default: true
    defer: 24h
auto_approve:
  - name: vendor updates
    sources: [apt]
`

// TestSiteEnrollWithTokens: three blank agents, each in its own network
// namespace, enroll with tokens against the issuing service in the
// origin's namespace (across the shaped WAN), start, and form the site.
// Their rings come from the tags of their credentials, whatever their
// local configs claim: desk-00 (token lab, config no tags) is lab;
// desk-01 (token pilot, config claims lab) is pilot; desk-02 (token
// without tags, config claims lab and pilot) is broad. A release then
// follows those rings: lab installs, pilot installs once the lab node's
// success reached it over gossip, broad waits out its deferral.
func TestSiteEnrollWithTokens(t *testing.T) {
	var is *issuing
	grant := [][]string{{"lab"}, {"pilot"}, nil}
	claim := [][]string{nil, {"lab"}, {"lab", "pilot"}}
	wantRing := []string{"lab", "pilot", "broad"}
	s := newSite(t, siteConfig{Nodes: 3,
		Enroll: func(t testing.TB, i int) string {
			return is.token(t, fmt.Sprintf("desk-%02d", i), grant[i], 1)
		},
		Tags: func(i int) []string { return claim[i] },
	})
	is = s.startIssuing(t)
	deb11, _ := s.buildPayload(t, "1.1", 0)
	s.origin.publishPolicy(t, policyByTags)
	s.startNodes(t)

	// Each enrollment got the token's site and tags.
	for i, n := range s.nodes {
		want := fmt.Sprintf("site branch, tags %s,", strings.Join(grant[i], ","))
		if !strings.Contains(n.enrollOutput, want) {
			t.Errorf("%s: enroll printed\n%s\nwant %q", n.hostname, n.enrollOutput, want)
		}
		c := credentialOf(t, s, i)
		if c.NodeID != n.id.String() || c.Site != "branch" || !slices.Equal(c.Tags, grant[i]) {
			t.Errorf("%s: credential %s site %q tags %v, want %s site branch tags %v", n.hostname, c.NodeID, c.Site, c.Tags, n.id, grant[i])
		}
	}
	led, err := credential.ReadLedger(filepath.Join(is.data, enroll.LedgerFile))
	if err != nil || len(led) != len(s.nodes) {
		t.Fatalf("the service's ledger: %d records (%v), want %d", len(led), err, len(s.nodes))
	}

	// Every node's ring comes from its credential's tags.
	for i, n := range s.nodes {
		s.waitFor(t, time.Minute, n.hostname+" in ring "+wantRing[i], func(ctx context.Context) (bool, string) {
			p, err := n.c.Policy(ctx)
			if err != nil {
				return false, err.Error()
			}
			if p.Ring != wantRing[i] || !p.Identity.Enforced || p.Identity.Problem != "" || !slices.Equal(p.Identity.Tags, grant[i]) {
				return false, fmt.Sprintf("%s: ring %q (%s), identity %+v", n.hostname, p.Ring, p.RingWhy, p.Identity)
			}
			return true, ""
		})
	}
	// The site admitted all three, and reports the credentials' rings
	// and tags.
	for _, n := range s.nodes {
		s.waitFor(t, time.Minute, n.hostname+" sees the site", func(ctx context.Context) (bool, string) {
			f, err := n.c.Fleet(ctx)
			if err != nil {
				return false, err.Error()
			}
			if len(f.Refused) > 0 {
				return false, fmt.Sprintf("%s refused %+v", n.hostname, f.Refused)
			}
			seen := 0
			for _, m := range f.Members {
				i := slices.IndexFunc(s.nodes, func(x *node) bool { return x.id.String() == m.NodeID })
				if i < 0 {
					return false, fmt.Sprintf("%s lists an unknown member %s", n.hostname, m.NodeID)
				}
				if m.Ring != wantRing[i] || !slices.Equal(m.Tags, grant[i]) || m.Site != "branch" {
					return false, fmt.Sprintf("%s sees %s in ring %q with tags %v site %q", n.hostname, m.Hostname, m.Ring, m.Tags, m.Site)
				}
				seen++
			}
			if seen != len(s.nodes) {
				return false, fmt.Sprintf("%s sees %d of %d members", n.hostname, seen, len(s.nodes))
			}
			return true, ""
		})
	}

	// Refused tokens, from a blank machine in desk-02's namespace: the
	// service says why and nothing is written.
	spent := filepath.Join(is.dir, "desk-00.token")
	expired := is.tokenFor(t, "expired", nil, 5, time.Second, is.root)
	other, err := tufrepo.Init(filepath.Join(s.dir, "other-fleet"), filepath.Join(s.dir, "other-fleet-keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, err := other.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	foreign := is.tokenFor(t, "foreign", nil, 5, time.Hour, otherRoot)
	blank := s.nodes[2]
	for _, c := range []struct{ name, token, reason string }{
		{"used up", spent, "token-used-up"},
		{"expired", expired, "token-expired"},
		{"another fleet", foreign, "token-foreign"},
	} {
		dir := filepath.Join(s.dir, "blank-"+strings.ReplaceAll(c.name, " ", "-"))
		cfgFile := filepath.Join(dir, "patchringd.yaml")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgFile, []byte("state_dir: "+filepath.Join(dir, "state")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if c.name == "expired" {
			// Past its expiry by the service's clock.
			s.waitFor(t, 10*time.Second, "the token's expiry", func(context.Context) (bool, string) {
				recs, err := is.store.Tokens()
				if err != nil {
					return false, err.Error()
				}
				for _, r := range recs {
					if r.Uses == 5 && r.Fleet == enroll.FleetID(is.root) && time.Now().After(r.Expires) {
						return true, ""
					}
				}
				return false, "not yet expired"
			})
		}
		out, err := s.enrollIn(blank.ns, cfgFile, c.token)
		if err == nil || !strings.Contains(out, c.reason) {
			t.Errorf("%s token: enroll %v, want a refusal %q:\n%s", c.name, err, c.reason, out)
		}
		cfg, _ := os.ReadFile(cfgFile)
		if string(cfg) != "state_dir: "+filepath.Join(dir, "state")+"\n" {
			t.Errorf("%s token: the refused enrollment changed the config:\n%s", c.name, cfg)
		}
		for _, f := range []string{filepath.Join(dir, "state", credential.FileName), filepath.Join(dir, "state", "node.key"), filepath.Join(dir, "root.json")} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s token: %s exists after a refused enrollment", c.name, f)
			}
		}
	}
	if led, _ := credential.ReadLedger(filepath.Join(is.data, enroll.LedgerFile)); len(led) != len(s.nodes) {
		t.Errorf("the service issued %d credentials, want %d (refused tokens issue none)", len(led), len(s.nodes))
	}

	// The release follows the credentials' rings.
	s.origin.apt.MustAdd(t, deb11)
	s.waitInstalled(t, s.nodes[:2], 3*time.Minute, "1.1")
	s.waitAction(t, s.nodes[2:], time.Minute, "1.1", "wait-deferral")
}
