package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
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
	GoFiles      []string // non-test files of the build's OS
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
// types. Test files follow the same rules as the code they test, with no
// exceptions: an end-to-end test of the tray or the CLI that needs a
// daemon-side API starts one through a harness in internal/testutil (such
// as internal/testutil/rebootapi) and talks to it through daemon/client. A
// harness sits above what it runs, so a test may use it only where it
// could import what the harness links (harnessRule).
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	deps := map[string][]string{}
	for _, p := range pkgs {
		deps[rel(p.ImportPath)] = p.Deps
	}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				to := rel(imp)
				kind := ""
				if test {
					kind = " (in a test)"
				}
				if why := importRule(from, to, test); why != "" {
					t.Errorf("%s imports %s%s: %s", from, to, kind, why)
				}
				if why := harnessRule(from, to, deps[to]); why != "" {
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
// the import is in a _test.go file; the rules are the same for tests but
// that internal/testutil is for tests only.
func importRule(from, to string, test bool) string {
	switch {
	case to == from:
		return ""
	case under(to, "cmd"):
		return "nothing imports a command"
	case isHarness(from) && !under(to, "tray"):
		return "" // a test harness runs real parts of the agent (harnessRule checks who uses it)
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
	case under(from, "tray") && !apiSide[to] && !under(to, "tray") && !under(to, "platform/ipc") && !under(to, "platform/paths"):
		return "the tray talks to the daemon only through daemon/client and daemon/apitypes (a test starts a daemon-side API through internal/testutil)"
	case from == "cmd/patchring" && under(to, "daemon") && !apiSide[to]:
		return "the CLI talks to the daemon only through daemon/client and daemon/apitypes (a test starts a daemon-side API through internal/testutil)"
	case apiSide[from] && under(to, "daemon") && !apiSide[to]:
		return "the API client and types do not depend on the daemon"
	}
	return ""
}

// isHarness says p is a test harness: a package below internal/testutil.
func isHarness(p string) bool { return strings.HasPrefix(p, "internal/testutil/") }

// harnessRule says why from must not use the test harness to, which links
// harnessDeps ("" when it may): a harness in internal/testutil runs real
// parts of the agent, so a lower layer's test may not reach the daemon
// through one. The tray's and the CLI's tests may: the harness serves the
// local API they reach only through daemon/client.
func harnessRule(from, to string, harnessDeps []string) string {
	if !isHarness(to) || !(under(from, "platform") || under(from, "policy") || under(from, "p2p") || under(from, "internal")) {
		return ""
	}
	for _, d := range harnessDeps {
		if d == module+"/daemon" || strings.HasPrefix(d, module+"/daemon/") {
			return fmt.Sprintf("the harness links %s: platform, policy, p2p and internal/ are below the daemon", rel(d))
		}
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
		{"tray", "daemon/localapi", true},
		{"tray", "daemon/reboot/reboottest", true},
		{"cmd/patchring", "daemon/localapi", false},
		{"cmd/patchring", "daemon/store", true},
		{"daemon/client", "daemon/store", false},
		{"daemon/client", "daemon/localapi", true},
		{"internal/testutil", "daemon/store", false},
		{"internal/testutil/rebootapi", "tray", false},
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
		{"internal/testutil/rebootapi", "daemon/localapi"},

		{"daemon/engine", "console/report"}, {"cmd/patchring", "console/server"}, {"console/server", "console/store"}} {
		if why := importRule(c[0], c[1], false); why != "" {
			t.Errorf("%s -> %s refused: %s", c[0], c[1], why)
		}
	}
	if why := importRule("tray", "internal/testutil/rebootapi", true); why != "" {
		t.Errorf("tray's test -> internal/testutil/rebootapi refused: %s", why)
	}
	harness := []string{"context", module + "/daemon/localapi"}
	for _, from := range []string{"platform/apt", "policy/trust", "p2p/gossip", "internal/rungroup"} {
		if harnessRule(from, "internal/testutil/rebootapi", harness) == "" {
			t.Errorf("%s's test -> a harness linking the daemon passed", from)
		}
	}
	for _, from := range []string{"tray", "cmd/patchring", "daemon/engine"} {
		if why := harnessRule(from, "internal/testutil/rebootapi", harness); why != "" {
			t.Errorf("%s's test -> internal/testutil/rebootapi refused: %s", from, why)
		}
	}
	if why := harnessRule("platform/apt", "internal/testutil", []string{"os", "testing"}); why != "" {
		t.Errorf("platform/apt's test -> internal/testutil refused: %s", why)
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

// daemonRoot are the daemon root's files: the composition root and the
// glue that reads several parts at once. A feature gets a package of its
// own under daemon/ (as the node key, daemon/nodekey, did), so that its
// name says what it is; adding a file here is a reviewed decision.
var daemonRoot = []string{"daemon.go", "reports.go", "selfupdate.go", "unmanaged.go", "vulns.go",
	"pkgmanager.go", "pkgmanager_linux.go", "pkgmanager_other.go"}

// TestDaemonRootIsWiring keeps feature code out of the daemon root.
func TestDaemonRootIsWiring(t *testing.T) {
	for _, p := range listPackages(t) {
		if rel(p.ImportPath) != "daemon" {
			continue
		}
		if len(p.GoFiles) == 0 {
			t.Fatal("go list found no files in daemon/")
		}
		for _, f := range p.GoFiles {
			if !slices.Contains(daemonRoot, f) {
				t.Errorf("daemon/%s: the daemon root holds wiring only (%v); give this feature its own package under daemon/ and name it in docs/ARCHITECTURE.md", f, daemonRoot)
			}
		}
		return
	}
	t.Fatal("go list did not list package daemon")
}

// TestCommandsLiveInCmd: every package main is a command under cmd/, so
// the tree says where the binaries are.
func TestCommandsLiveInCmd(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" && !under(rel(p.ImportPath), "cmd") {
			t.Errorf("%s is a package main outside cmd/: move it to cmd/<name>", rel(p.ImportPath))
		}
	}
}

// TestArchitectureDocIsTrue keeps docs/ARCHITECTURE.md true to the tree:
// it names every package (as `path`, or a command as (cmd/name)), every
// package path it names exists, and its vocabulary has one entry for each
// word the code and the documents use.
func TestArchitectureDocIsTrue(t *testing.T) {
	b, err := os.ReadFile("../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	pkgs := map[string]bool{}
	for _, p := range listPackages(t) {
		path := rel(p.ImportPath)
		pkgs[path] = true
		if !strings.Contains(doc, "`"+path+"`") && !strings.Contains(doc, "("+path+")") {
			t.Errorf("docs/ARCHITECTURE.md does not name package %s: add it to the package table (or the processes, for a command)", path)
		}
	}
	for _, m := range regexp.MustCompile("`((?:cmd|daemon|internal|platform|policy|p2p|tray)(?:/[a-z0-9_-]+)+)`").FindAllStringSubmatch(doc, -1) {
		if !pkgs[m[1]] {
			t.Errorf("docs/ARCHITECTURE.md names %s, which is not a package", m[1])
		}
	}
	for _, word := range []string{"fleet", "site", "pool", "ring", "member", "peer"} {
		if n := strings.Count(doc, "\n| "+word+" | "); n != 1 {
			t.Errorf("docs/ARCHITECTURE.md's vocabulary has %d entries for %q, want 1", n, word)
		}
	}
}
