package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/patchring/patchring"

type pkgInfo struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
	Standard   bool
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
// cmd -> daemon -> (p2p, platform, policy); tray and the CLI reach the
// daemon only through its local API client and types.
func TestImportDirection(t *testing.T) {
	apiSide := map[string]bool{"daemon/client": true, "daemon/apitypes": true}
	for _, p := range listPackages(t) {
		from := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := rel(imp)
			var why string
			switch {
			case under(to, "cmd"):
				why = "nothing imports a command"
			case (under(from, "platform") || under(from, "policy") || under(from, "p2p")) && (under(to, "daemon") || under(to, "tray")):
				why = "platform, policy and p2p are below the daemon"
			case under(from, "platform") && (under(to, "policy") || under(to, "p2p")):
				why = "platform does not depend on policy or p2p"
			case under(from, "policy") && (under(to, "platform") || under(to, "p2p")):
				why = "policy is pure: it does not depend on platform or p2p"
			case under(from, "p2p") && under(to, "platform"):
				why = "p2p does not depend on platform"
			case under(from, "tray") && !apiSide[to] && !under(to, "tray") && !under(to, "platform/ipc") && !under(to, "platform/paths"):
				why = "the tray talks to the daemon only through daemon/client and daemon/apitypes"
			case from == "cmd/patchring" && under(to, "daemon") && !apiSide[to]:
				why = "the CLI talks to the daemon only through daemon/client and daemon/apitypes"
			case apiSide[from] && under(to, "daemon") && !apiSide[to]:
				why = "the API client and types do not depend on the daemon"
			}
			if why != "" {
				t.Errorf("%s imports %s: %s", from, to, why)
			}
		}
	}
}

// TestAPITypesUseStdlibOnly keeps daemon/apitypes importable by anything.
func TestAPITypesUseStdlibOnly(t *testing.T) {
	for _, p := range listPackages(t) {
		if rel(p.ImportPath) != "daemon/apitypes" {
			continue
		}
		for _, d := range p.Deps {
			if strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
				t.Errorf("daemon/apitypes depends on %s; it must use the standard library only", d)
			}
		}
		return
	}
	t.Fatal("daemon/apitypes not found")
}

// TestEveryPackageHasDoc checks that every package says what it owns.
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment: add one saying what it owns", rel(p.ImportPath))
		}
	}
}
