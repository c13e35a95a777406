package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/enroll"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

// proc is a long-running process a test started; it is killed in cleanup.
type proc struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits for a line of output matching re and returns its first
// group.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var got string
	testutil.WaitFor(t, 30*time.Second, re.String(), func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited: %v\n%s", p.cmd.Path, err, p.out)
		default:
		}
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			got = m[1]
			return nil
		}
		return fmt.Errorf("no match in:\n%s", p.out)
	})
	return got
}

// writeIssuerKey writes an issuing key in the repository's key file format.
func writeIssuerKey(t *testing.T, path string, priv ed25519.PrivateKey) {
	t.Helper()
	pub := priv.Public().(ed25519.PublicKey)
	tk, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tk.ID()
	b, _ := json.Marshal(map[string]any{"format": 1, "role": tufrepo.RoleFleetIssuer, "keyid": id, "keytype": "ed25519", "scheme": "ed25519",
		"public": hex.EncodeToString(pub), "created": time.Now().UTC(), "private": hex.EncodeToString(priv.Seed())})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// enrollFleet is a fleet on 127.0.0.1 run by the real CLI: the origin
// (patchring repo serve) and the issuing service (patchring ca serve).
type enrollFleet struct {
	dir, repoDir, rootFile, data string
	repo                         *tufrepo.Repo
	ca                           ed25519.PrivateKey
	origin, service              string
}

func newEnrollFleet(t *testing.T, name string, validity string) *enrollFleet {
	t.Helper()
	return newEnrollFleetServed(t, name, validity, false)
}

// newEnrollFleetServed is newEnrollFleet with the issuing service inside
// the fleet console (patchring console serve --issuer-key) when
// atConsole.
func newEnrollFleetServed(t *testing.T, name string, validity string, atConsole bool) *enrollFleet {
	t.Helper()
	f := &enrollFleet{dir: filepath.Join(t.TempDir(), name)}
	f.repoDir, f.rootFile, f.data = filepath.Join(f.dir, "repo"), filepath.Join(f.dir, "root.json"), filepath.Join(f.dir, "ca-data")
	var err error
	if f.repo, err = tufrepo.Init(f.repoDir, filepath.Join(f.dir, "keys"), tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.InitFleet(); err != nil {
		t.Fatal(err)
	}
	if f.ca, err = f.repo.FleetKey(tufrepo.RoleFleetCA); err != nil {
		t.Fatal(err)
	}
	_, issuer, _ := ed25519.GenerateKey(rand.Reader)
	ic, err := credential.SignIssuer(f.ca, name+"-svc", issuer.Public().(ed25519.PublicKey), nil, time.Now().Add(-time.Hour), time.Now().AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.UpdateFleet(func(d *credential.Document) error { d.Issuers = append(d.Issuers, ic); return nil }); err != nil {
		t.Fatal(err)
	}
	root, _ := f.repo.RootJSON()
	os.WriteFile(f.rootFile, root, 0o644)
	keyFile := filepath.Join(f.dir, "issuer.json")
	writeIssuerKey(t, keyFile, issuer)

	cli := cliBin.Path(t)
	origin := startProc(t, cli, "repo", "serve", "--repo", f.repoDir, "--listen", "127.0.0.1:0")
	f.origin = "http://" + origin.waitLine(t, regexp.MustCompile(`on http://(127\.0\.0\.1:\d+)/`))
	if atConsole {
		console := filepath.Join(f.dir, "console")
		f.data = filepath.Join(console, "issuing")
		svc := startProc(t, cli, "console", "serve", "--data", console, "--fleet-repo", f.repoDir, "--issuer-key", keyFile,
			"--issuer-validity", validity, "--listen", "127.0.0.1:0")
		f.service = "http://" + svc.waitLine(t, regexp.MustCompile(`console serving" url=http://(127\.0\.0\.1:\d+)`))
		return f
	}
	svc := startProc(t, cli, "ca", "serve", "--data", f.data, "--issuer-key", keyFile, "--repo", f.repoDir, "--listen", "127.0.0.1:0", "--validity", validity)
	f.service = "http://" + svc.waitLine(t, regexp.MustCompile(`Issuing service on http://(127\.0\.0\.1:\d+)/`))
	return f
}

// token creates a token with the real CLI and returns its file.
func (f *enrollFleet) token(t *testing.T, name string, extra ...string) string {
	t.Helper()
	out := filepath.Join(f.dir, name+".token")
	args := append([]string{"enroll-token", "create", "--data", f.data, "--origin", f.origin, "--service", f.service, "--root", f.rootFile, "--out", out}, extra...)
	if b, err := exec.Command(cliBin.Path(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("enroll-token create: %v\n%s", err, b)
	}
	return out
}

// agentDirs are an agent's config file and state dir.
type agentDirs struct{ config, state string }

func newAgentDirs(t *testing.T) agentDirs {
	d := t.TempDir()
	return agentDirs{config: filepath.Join(d, "etc", "patchringd.yaml"), state: filepath.Join(d, "state")}
}

func (a agentDirs) enroll(t *testing.T, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"enroll", "--config", a.config, "--state-dir", a.state}, args...)
	b, err := exec.Command(patchringd.Path(t), args...).CombinedOutput()
	return string(b), err
}

// assertNotEnrolled checks a refused enrollment wrote nothing.
func (a agentDirs) assertNotEnrolled(t *testing.T) {
	t.Helper()
	for _, p := range []string{a.config, filepath.Join(filepath.Dir(a.config), "root.json"), filepath.Join(a.state, credential.FileName),
		filepath.Join(a.state, enroll.StateFile), filepath.Join(a.state, "node.key")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists after a refused enrollment", p)
		}
	}
}

// TestEnrollEndToEnd runs the real patchring ca serve, repo serve and
// enroll-token, and the real patchringd enroll, on 127.0.0.1: a token
// gives its site and tags; a used up, expired or foreign token is refused
// with its reason and leaves nothing; offline request, signature and
// install work without an issuing service.
func TestEnrollEndToEnd(t *testing.T) {
	f := newEnrollFleet(t, "acme", "30d")
	tok := f.token(t, "berlin", "--site", "berlin", "--tags", "lab,kiosk", "--uses", "1", "--expires", "1h")

	a := newAgentDirs(t)
	out, err := a.enroll(t, "@"+tok)
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if !strings.Contains(out, "site berlin, tags lab,kiosk") {
		t.Fatalf("enroll output:\n%s", out)
	}
	c, _, err := enroll.ReadCredential(a.state)
	if err != nil || c.Site != "berlin" || !slices.Equal(c.Tags, []string{"lab", "kiosk"}) {
		t.Fatalf("node.credential %v %v", c, err)
	}
	conf := config.Default()
	if err := config.Load(a.config, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Policy.Origin != f.origin || conf.Site != "berlin" {
		t.Fatalf("config %+v", conf)
	}
	led, err := credential.ReadLedger(filepath.Join(f.data, "issued.jsonl"))
	if err != nil || len(led) != 1 || led[0].NodeID != c.NodeID {
		t.Fatalf("service ledger %+v %v", led, err)
	}
	if out, err := a.enroll(t, "@"+tok); err == nil || !strings.Contains(out, "enrolled already") {
		t.Fatalf("second enroll of the same node: %v\n%s", err, out)
	}

	t.Run("used up", func(t *testing.T) {
		b := newAgentDirs(t)
		out, err := b.enroll(t, "@"+tok)
		if err == nil || !strings.Contains(out, "token-used-up") || !strings.Contains(out, "used up (1 of 1 uses)") {
			t.Fatalf("err %v\n%s", err, out)
		}
		b.assertNotEnrolled(t)
	})
	t.Run("first start with a refused token", func(t *testing.T) {
		b := newAgentDirs(t)
		os.MkdirAll(filepath.Dir(b.config), 0o755)
		tf := filepath.Join(filepath.Dir(b.config), enroll.TokenFile)
		raw, _ := os.ReadFile(tok) // used up
		os.WriteFile(tf, raw, 0o600)
		os.WriteFile(b.config, nil, 0o644)
		sock := filepath.Join(b.state, "api.sock")
		p := startProc(t, patchringd.Path(t), "run", "--config", b.config, "--state-dir", b.state, "--socket", sock)
		cl := &client.Client{Socket: sock}
		testutil.WaitFor(t, 30*time.Second, "agent running unenrolled", func() error {
			_, err := cl.Status(context.Background())
			return err
		})
		if _, err := os.Stat(tf + ".refused"); err != nil {
			t.Fatalf("refused token not set aside: %v\n%s", err, p.out)
		}
		if enroll.HasCredential(b.state) || !strings.Contains(p.out.String(), "token-used-up") {
			t.Fatalf("credential or log:\n%s", p.out)
		}
	})
	t.Run("expired", func(t *testing.T) {
		short := f.token(t, "short", "--site", "berlin", "--expires", "1s")
		testutil.WaitFor(t, 20*time.Second, "token expired", func() error {
			out, _ := exec.Command(cliBin.Path(t), "enroll-token", "list", "--data", f.data).CombinedOutput()
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "expired") {
					return nil
				}
			}
			return fmt.Errorf("not expired yet:\n%s", out)
		})
		b := newAgentDirs(t)
		out, err := b.enroll(t, "@"+short)
		if err == nil || !strings.Contains(out, "token-expired") {
			t.Fatalf("err %v\n%s", err, out)
		}
		b.assertNotEnrolled(t)
	})
	t.Run("another fleet", func(t *testing.T) {
		other := newEnrollFleet(t, "globex", "30d")
		// A token of the other fleet, pointed at this fleet's service.
		foreign := filepath.Join(other.dir, "foreign.token")
		if b, err := exec.Command(cliBin.Path(t), "enroll-token", "create", "--data", other.data, "--site", "berlin", "--origin", other.origin,
			"--service", f.service, "--root", other.rootFile, "--out", foreign).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		b := newAgentDirs(t)
		out, err := b.enroll(t, "@"+foreign)
		if err == nil || !strings.Contains(out, "token-foreign") || !strings.Contains(out, "another fleet") {
			t.Fatalf("err %v\n%s", err, out)
		}
		b.assertNotEnrolled(t)
	})
	t.Run("service down", func(t *testing.T) {
		down := f.token(t, "down", "--site", "berlin")
		b := newAgentDirs(t)
		// The same token with an unreachable service URL.
		tk := readTokenFile(t, down)
		tk.Service = "http://127.0.0.1:1"
		s, err := tk.String()
		if err != nil {
			t.Fatal(err)
		}
		out, err := b.enroll(t, s)
		if err == nil || !strings.Contains(out, "connection refused") {
			t.Fatalf("err %v\n%s", err, out)
		}
		b.assertNotEnrolled(t)
	})

	t.Run("offline", func(t *testing.T) {
		b := newAgentDirs(t)
		req := filepath.Join(t.TempDir(), "node.request")
		if out, err := b.enroll(t, "--request", req); err != nil || !strings.Contains(out, "Wrote the enrollment request") {
			t.Fatalf("enroll --request: %v\n%s", err, out)
		}
		raw, _ := os.ReadFile(req)
		r, err := credential.ParseRequest(raw)
		if err != nil {
			t.Fatal(err)
		}
		// The admin signs it with the offline CA key (patchring ca sign).
		sign := func(nodeID string) string {
			c := &credential.Credential{NodeID: nodeID, Hostname: r.Hostname, Site: "depot", Tags: []string{"offline"}, Serial: 7,
				NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(0, 6, 0)}
			if err := c.Sign(f.ca); err != nil {
				t.Fatal(err)
			}
			w, _ := c.Marshal()
			p := filepath.Join(t.TempDir(), "node.credential")
			os.WriteFile(p, w, 0o644)
			return p
		}
		other, _ := newNodeID(t)
		if out, err := b.enroll(t, "--credential", sign(other)); err == nil || !strings.Contains(out, "belongs to another node") {
			t.Fatalf("another node's credential: %v\n%s", err, out)
		}
		out, err := b.enroll(t, "--credential", sign(r.NodeID))
		if err != nil || !strings.Contains(out, "site depot, tags offline") || !strings.Contains(out, "not checked here (no origin configured)") {
			t.Fatalf("enroll --credential: %v\n%s", err, out)
		}
		// With the origin configured, it is verified in fleet.json.
		os.MkdirAll(filepath.Dir(b.config), 0o755)
		os.WriteFile(b.config, fmt.Appendf(nil, "policy:\n  origin: %s\n  root_file: %s\n", f.origin, f.rootFile), 0o644)
		out, err = b.enroll(t, "--credential", sign(r.NodeID))
		if err != nil || strings.Contains(out, "not checked") {
			t.Fatalf("enroll --credential with the origin: %v\n%s", err, out)
		}
	})
}

func newNodeID(t *testing.T) (string, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id, err := credential.NodeIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id, priv
}

// TestEnrollAtFirstStartAndRenewal: patchringd run finds a token file
// beside its config, enrolls, removes the file and starts; it renews its
// short credential online, and after the admin revokes the node the next
// renewal is refused and shown in the status.
//
// The issuing service runs as patchring ca serve, and inside the fleet
// console (console serve --issuer-key): the same enrollment, renewal and
// refusal at the console's address.
func TestEnrollAtFirstStartAndRenewal(t *testing.T) {
	for _, atConsole := range []bool{false, true} {
		name := "ca serve"
		if atConsole {
			name = "console serve"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testEnrollAtFirstStartAndRenewal(t, newEnrollFleetServed(t, "acme", "30s", atConsole))
		})
	}
}

func testEnrollAtFirstStartAndRenewal(t *testing.T, f *enrollFleet) {
	a := newAgentDirs(t)
	os.MkdirAll(filepath.Dir(a.config), 0o755)
	tokFile := filepath.Join(filepath.Dir(a.config), enroll.TokenFile)
	raw, _ := os.ReadFile(f.token(t, "first", "--site", "hamburg", "--tags", "pilot"))
	os.WriteFile(tokFile, raw, 0o600)

	sock := filepath.Join(a.state, "api.sock")
	p := startProc(t, patchringd.Path(t), "run", "--config", a.config, "--state-dir", a.state, "--socket", sock, "--log-level", "debug")
	cl := &client.Client{Socket: sock}
	var first *credential.Credential
	testutil.WaitFor(t, 30*time.Second, "agent enrolled and running", func() error {
		c, _, err := enroll.ReadCredential(a.state)
		if err != nil {
			return err
		}
		first = c
		_, err = cl.Status(context.Background())
		return err
	})
	if first.Site != "hamburg" {
		t.Fatalf("credential %s", first)
	}
	if _, err := os.Stat(tokFile); err == nil {
		t.Error("the spent token file is still there")
	}
	testutil.WaitFor(t, 60*time.Second, "credential renewed", func() error {
		c, _, err := enroll.ReadCredential(a.state)
		if err != nil {
			return err
		}
		if c.Serial == first.Serial {
			return fmt.Errorf("serial %d not renewed yet\n%s", c.Serial, p.out)
		}
		if c.Site != "hamburg" || !slices.Equal(c.Tags, []string{"pilot"}) {
			t.Fatalf("renewed credential %s", c)
		}
		return nil
	})
	if _, err := f.repo.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: first.NodeID, Reason: "stolen", At: time.Now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "renewal refused", func() error {
		st, err := cl.Status(context.Background())
		if err != nil {
			return err
		}
		for _, s := range st.Subsystems {
			if s.Name == "enrollment" && s.Details["refused"] == "revoked" && strings.Contains(s.Summary, "stolen") {
				return nil
			}
		}
		return fmt.Errorf("status %+v", st.Subsystems)
	})
	if !strings.Contains(p.out.String(), "credential renewal refused") {
		t.Errorf("refusal not logged:\n%s", p.out)
	}
}

func readTokenFile(t *testing.T, path string) *penroll.Token {
	t.Helper()
	tk, err := penroll.ReadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestEnrollWhenTokenDroppedLater: an agent its package started without a
// token runs unenrolled and says in its log where to drop one; a token
// file dropped there afterwards is picked up without a restart: the agent
// enrolls, removes the file and runs again (the same process) with the
// configuration enrolling wrote.
func TestEnrollWhenTokenDroppedLater(t *testing.T) {
	f := newEnrollFleet(t, "acme", "1h")
	a := newAgentDirs(t)
	if err := os.MkdirAll(filepath.Dir(a.config), 0o755); err != nil {
		t.Fatal(err)
	}
	// As the package ships it: all comments.
	if err := os.WriteFile(a.config, []byte("# patchringd configuration (defaults)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(filepath.Dir(a.config), enroll.TokenFile)
	sock := filepath.Join(a.state, "api.sock")
	p := startProc(t, patchringd.Path(t), "run", "--config", a.config, "--state-dir", a.state, "--socket", sock)
	cl := &client.Client{Socket: sock}
	ctx := context.Background()
	testutil.WaitFor(t, 30*time.Second, "the unenrolled agent answering", func() error {
		_, err := cl.Status(ctx)
		return err
	})
	if !strings.Contains(p.out.String(), "drop an enrollment token into "+tokFile) {
		t.Errorf("the unenrolled agent's log does not say where to drop a token:\n%s", p.out)
	}
	raw, err := os.ReadFile(f.token(t, "later", "--site", "hamburg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var pol apitypes.EffectivePolicy
	testutil.WaitFor(t, 60*time.Second, "the agent enrolled and running with the fleet's origin", func() error {
		if _, _, err := enroll.ReadCredential(a.state); err != nil {
			return err
		}
		if _, err := os.Stat(tokFile); err == nil {
			return errors.New("the token file is still there")
		}
		var err error
		if pol, err = cl.Policy(ctx); err != nil {
			return err
		}
		if pol.Source == "" && pol.LastError == "" && pol.LastTry.IsZero() {
			return fmt.Errorf("no policy source tried yet: %+v", pol)
		}
		return nil
	})
	c, _, err := enroll.ReadCredential(a.state)
	if err != nil || c.Site != "hamburg" {
		t.Fatalf("credential %v (%v), want site hamburg", c, err)
	}
	if !strings.Contains(p.out.String(), "an enrollment token file was dropped") {
		t.Errorf("the agent's log does not say it enrolled with the dropped token:\n%s", p.out)
	}
	// Only the process the test started serves the socket: it answered
	// after enrolling, so it did not exit.
}
