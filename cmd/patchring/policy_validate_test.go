package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicyValidate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{Out: &out, Err: &errOut, In: strings.NewReader("")}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestPolicyValidateExample(t *testing.T) {
	out, err := runPolicyValidate(t, "policy", "validate", "../../docs/policy.example.yaml")
	if err != nil {
		t.Fatalf("validate example: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "../../docs/policy.example.yaml: valid (3 rings, ") {
		t.Fatalf("output = %q", out)
	}
}

func TestPolicyValidateReportsAllProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	src := `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
    defer: 7 days
  - name: broad
    defualt: true
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runPolicyValidate(t, "policy", "validate", path)
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 1 || exit.msg != path+": 4 problems" {
		t.Fatalf("err = %v, want exit code 1 counting 4 problems", err)
	}
	want := []string{
		path + ":4:3: rings: no default ring: mark the ring for nodes no selector matches with default: true",
		path + ":6:12: rings[0].defer: '7 days' is not a duration; use e.g. 7d, 36h, 2w or 1d12h",
		path + `:7:5: rings[1]: ring "broad" has no select and is not the default ring, so no node can join it; add select: [{tags: [...]}]`,
		path + `:8:5: rings[1].defualt: unknown key "defualt" (did you mean "default"?); allowed here: name, default, select, defer, deadline, gates, reboot, health_check`,
	}
	if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	out, err = runPolicyValidate(t, "-o", "json", "policy", "validate", path)
	if !errors.As(err, &exit) || exit.code != 1 {
		t.Fatalf("json: err = %v", err)
	}
	var res policyValidation
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	if res.Valid || len(res.Problems) != 4 || res.Problems[1].Line != 6 || res.Problems[1].Col != 12 || res.Problems[1].Path != "rings[0].defer" {
		t.Fatalf("json result = %+v", res)
	}
}

func TestPolicyValidateMissingFile(t *testing.T) {
	_, err := runPolicyValidate(t, "policy", "validate", filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "read policy") {
		t.Fatalf("err = %v, want a read error", err)
	}
}
