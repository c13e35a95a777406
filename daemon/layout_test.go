package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/patchring/patchring"

type pkgInfo struct {
	ImportPath   string
	Name         string
	Doc          string
	Imports      []string
	TestImports  []string // of the package's own _test.go files
	XTestImports []string // of its external (package x_test) test files
	Deps         []string
	Standard     bool
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// TestImportDirection checks the one-way import rule of docs/ARCHITECTURE.md:
// cmd -> daemon -> (p2p, platform, policy), with internal/ below them all;
// tray and the CLI reach the daemon only through its local API client and
// types. Test files follow the same layering: a test of a lower layer does
// not import a higher one. Only the API-side rule is for production code
// alone: end-to-end tests of the tray and the CLI start a real daemon-side
// API, and TestBinaryDeps checks what the CLI binary links instead.
func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				to := rel(imp)
				if why := importRule(from, to, test); why != "" {
					kind := ""
					if test {
						kind = " (in a test)"
					}
					t.Errorf("%s imports %s%s: %s", from, to, kind, why)
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
}

// apiSide is what the tray and the CLI may import from daemon/.
var apiSide = map[string]bool{"daemon/client": true, "daemon/apitypes": true}

// importRule says why from must not import to ("" when it may). test says
// the import is in a _test.go file.
func importRule(from, to string, test bool) string {
	switch {
	case to == from:
		return ""
	case under(to, "cmd"):
		return "nothing imports a command"
	case under(to, "internal/testutil") && !test && !under(from, "internal/testutil"):
		return "internal/testutil is for tests only"
	case under(from, "internal") && !under(to, "internal"):
		return "internal/ is below everything: it imports no other part of patchring"
	case under(to, "internal"):
		return "" // shared helpers, usable from every layer
	case (under(from, "platform") || under(from, "policy") || under(from, "p2p")) && (under(to, "daemon") || under(to, "tray")):
		return "platform, policy and p2p are below the daemon"
	case under(from, "platform") && (under(to, "policy") || under(to, "p2p")):
		return "platform does not depend on policy or p2p"
	case under(from, "policy") && (under(to, "platform") || under(to, "p2p")):
		return "policy is pure: it does not depend on platform or p2p"
	case under(from, "p2p") && under(to, "platform"):
		return "p2p does not depend on platform"
	case under(from, "daemon") && under(to, "tray"):
		return "the daemon does not depend on the tray"
	case under(to, "console") && !under(from, "console") && !under(from, "cmd") && to != "console/report":
		return "the console is its own part: only commands link it; the agent side may use console/report (the record format) alone"
	case under(from, "console") && (under(to, "daemon") || under(to, "p2p") || under(to, "platform") || under(to, "tray")):
		return "the console does not link the agent: it knows nodes only by their signed records"
	case test:
		return ""
	case under(from, "tray") && !apiSide[to] && !under(to, "tray") && !under(to, "platform/ipc") && !under(to, "platform/paths"):
		return "the tray talks to the daemon only through daemon/client and daemon/apitypes"
	case from == "cmd/patchring" && under(to, "daemon") && !apiSide[to]:
		return "the CLI talks to the daemon only through daemon/client and daemon/apitypes"
	case apiSide[from] && under(to, "daemon") && !apiSide[to]:
		return "the API client and types do not depend on the daemon"
	}
	return ""
}

// TestImportRuleCatches keeps importRule honest: each case is a violation
// it must report.
func TestImportRuleCatches(t *testing.T) {
	for _, c := range []struct {
		from, to string
		test     bool
	}{
		{"daemon", "cmd/patchringd", false},
		{"daemon/engine", "internal/testutil", false},
		{"internal/atomicfile", "policy", false},
		{"internal/testutil", "daemon/client", true},
		{"platform/apt", "daemon/store", true},
		{"policy/trust", "p2p/content", true},
		{"p2p/gossip", "platform/ipc", false},
		{"daemon/engine", "tray", true},
		{"tray", "daemon/store", false},
		{"cmd/patchring", "daemon/localapi", false},
		{"daemon/client", "daemon/store", false},
		{"daemon/engine", "console/store", false},
		{"p2p/gossip", "console/server", true},
		{"console/server", "daemon/client", false},
		{"console/store", "p2p/content", true},
	} {
		if importRule(c.from, c.to, c.test) == "" {
			t.Errorf("%s -> %s (test %v) passed the rules", c.from, c.to, c.test)
		}
	}
	for _, c := range [][2]string{{"daemon", "internal/rungroup"}, {"tray", "internal/version"}, {"cmd/patchring", "daemon/client"}, {"daemon", "p2p/gossip"},
		{"daemon/engine", "console/report"}, {"cmd/patchring", "console/server"}, {"console/server", "console/store"}} {
		if why := importRule(c[0], c[1], false); why != "" {
			t.Errorf("%s -> %s refused: %s", c[0], c[1], why)
		}
	}
}

// apiParts are the daemon parts the local API calls through its route
// table (daemon/localapi/routes.go). They take typed requests and fail
// with apicall errors; HTTP is the local API's business alone.
var apiParts = []string{"daemon/engine", "daemon/reboot", "daemon/inventory", "daemon/policysvc", "daemon/membership", "daemon/apicall"}

// httpClients are the parts that fetch over HTTP as clients; they still
// must not serve the local API.
var httpClients = map[string]string{"daemon/engine": "downloads payloads from peers' and mirrors' URLs"}

// TestPartsKnowNoHTTP keeps the route table the only place that speaks
// the local API's HTTP: the parts import neither daemon/localapi nor
// net/http (a part's own tests may start a real API).
func TestPartsKnowNoHTTP(t *testing.T) {
	seen := 0
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		if !slices.Contains(apiParts, from) {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if why := partImportRule(from, imp); why != "" {
				t.Errorf("%s imports %s: %s", from, imp, why)
			}
		}
	}
	if seen != len(apiParts) {
		t.Errorf("found %d of the parts %v", seen, apiParts)
	}
}

func partImportRule(from, imp string) string {
	switch {
	case imp == module+"/daemon/localapi" || strings.HasPrefix(imp, module+"/daemon/localapi/"):
		return "a part does not know the local API; add its route to daemon/localapi/routes.go and give the part a typed method"
	case imp == "net/http" && httpClients[from] == "":
		return "a part does not speak HTTP; the route table decodes requests and maps apicall errors to statuses"
	}
	return ""
}

// TestPartImportRuleCatches keeps partImportRule honest.
func TestPartImportRuleCatches(t *testing.T) {
	for _, c := range [][2]string{{"daemon/reboot", "net/http"}, {"daemon/engine", module + "/daemon/localapi"}, {"daemon/inventory", module + "/daemon/localapi"}} {
		if partImportRule(c[0], c[1]) == "" {
			t.Errorf("%s -> %s passed", c[0], c[1])
		}
	}
	if why := partImportRule("daemon/reboot", module+"/daemon/apicall"); why != "" {
		t.Errorf("daemon/reboot -> daemon/apicall refused: %s", why)
	}
}

// stdlibOnly are the packages anything may import: the local API's types
// and the console's record format (the agent signs records with it).
var stdlibOnly = []string{"daemon/apitypes", "console/report"}

// TestAPITypesUseStdlibOnly keeps stdlibOnly importable by anything.
func TestAPITypesUseStdlibOnly(t *testing.T) {
	seen := 0
	for _, p := range listPackages(t) {
		if !slices.Contains(stdlibOnly, rel(p.ImportPath)) {
			continue
		}
		seen++
		for _, d := range p.Deps {
			if strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
				t.Errorf("%s depends on %s; it must use the standard library only", rel(p.ImportPath), d)
			}
		}
	}
	if seen != len(stdlibOnly) {
		t.Fatalf("found %d of %v", seen, stdlibOnly)
	}
}

// TestEveryPackageHasDoc checks that every package says what it owns.
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment: add one saying what it owns", rel(p.ImportPath))
		}
	}
}

// binaryRules says what each command must not link, on every OS it is built
// for (Tailscale's deptest does the same for its binaries). A prefix ending
// in "/" matches the module path and everything below it.
var binaryRules = []struct {
	cmd    string
	denied []string
	why    string
}{
	{
		cmd:    "cmd/patchringd",
		denied: []string{"fyne.io/systray", "github.com/godbus/dbus/", module + "/tray"},
		why:    "the agent runs on headless hosts: no tray, no D-Bus GUI code (it only writes tray/autostart's entry)",
	},
	{
		cmd:    "cmd/patchringd",
		denied: []string{module + "/console/store", module + "/console/server", module + "/console/auth", module + "/console/client", "modernc.org/sqlite", "github.com/jackc/pgx/"},
		why:    "the agent does not carry the console (its databases, dashboard, accounts); it may sign records with console/report",
	},
	{
		cmd: "cmd/patchring",
		denied: []string{"github.com/libp2p/", "github.com/hashicorp/memberlist", "go.etcd.io/bbolt",
			module + "/daemon/localapi", module + "/daemon/store", module + "/daemon/engine", module + "/p2p/"},
		why: "the CLI reaches the agent only through the local API client",
	},
	// cmd/patchring-demo may link anything: it runs a whole fleet.
}

// denied reports whether dep matches one of the rule's prefixes. A
// sub-package of a denied package is denied too, except tray/autostart,
// which exists so that the agent can write the tray's autostart entry
// without linking the tray.
func denied(dep string, prefixes []string) bool {
	if dep == module+"/tray/autostart" {
		return false
	}
	for _, p := range prefixes {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(dep, p) || dep == p || strings.HasPrefix(dep, p+"/") {
			return true
		}
	}
	return false
}

// listDeps returns what the package pkg links when built for goos.
func listDeps(t *testing.T, goos, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos)
	if goos != runtime.GOOS {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s (GOOS=%s): %v\n%s", pkg, goos, err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps %s (GOOS=%s) found only %v", pkg, goos, deps)
	}
	return deps
}

// TestBinaryDeps checks binaryRules on the binaries themselves (with test
// files left out, as they are built).
func TestBinaryDeps(t *testing.T) {
	for _, goos := range []string{"linux", "windows", "darwin"} {
		for _, r := range binaryRules {
			for _, d := range listDeps(t, goos, module+"/"+r.cmd) {
				if denied(d, r.denied) {
					t.Errorf("%s (GOOS=%s) links %s: %s", r.cmd, goos, d, r.why)
				}
			}
		}
	}
	// The listing and the matching are real: each binary links what the
	// other one must not (the CLI runs the tray; the agent gossips).
	cli, agent := listDeps(t, "linux", module+"/cmd/patchring"), listDeps(t, "linux", module+"/cmd/patchringd")
	if !slices.ContainsFunc(cli, func(d string) bool { return denied(d, binaryRules[0].denied) }) {
		t.Error("cmd/patchring does not link the tray: the dependency listing is wrong")
	}
	if !slices.ContainsFunc(cli, func(d string) bool { return denied(d, binaryRules[1].denied) }) {
		t.Error("cmd/patchring does not link the console: the dependency listing is wrong")
	}
	for _, want := range []string{"github.com/libp2p/go-libp2p", "github.com/hashicorp/memberlist", "go.etcd.io/bbolt"} {
		if !slices.Contains(agent, want) || !denied(want, binaryRules[2].denied) {
			t.Errorf("cmd/patchringd does not link %s, or the CLI's rule does not deny it: the dependency check is wrong", want)
		}
	}
}
