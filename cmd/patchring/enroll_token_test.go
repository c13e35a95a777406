package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

func TestEnrollTokenCLI(t *testing.T) {
	base := t.TempDir()
	r, err := tufrepo.Init(filepath.Join(base, "repo"), filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, _ := r.RootJSON()
	rootFile := filepath.Join(base, "root.json")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "ca")
	out := mustCLI(t, "enroll-token", "create", "--data", data, "--site", "berlin", "--tags", "lab,kiosk", "--uses", "3", "--expires", "2d",
		"--origin", "http://127.0.0.1:8080", "--service", "http://127.0.0.1:8446", "--root", rootFile)
	tok, err := enroll.ParseToken(strings.Split(out, "\n")[0])
	if err != nil {
		t.Fatalf("printed token: %v\n%s", err, out)
	}
	if tok.Origin != "http://127.0.0.1:8080" || tok.Service != "http://127.0.0.1:8446" || tok.FleetID() != enroll.FleetID(root) {
		t.Fatalf("token %+v", tok)
	}
	file := filepath.Join(base, "b.token")
	mustCLI(t, "enroll-token", "create", "--data", data, "--site", "hamburg", "--origin", "http://127.0.0.1:8080",
		"--service", "http://127.0.0.1:8446", "--root", rootFile, "--out", file)
	if _, err := enroll.ReadTokenFile(file); err != nil {
		t.Fatal(err)
	}
	list := mustCLI(t, "enroll-token", "list", "--data", data)
	if !strings.Contains(list, tok.ID) || !strings.Contains(list, "lab,kiosk") || !strings.Contains(list, "3/3") || !strings.Contains(list, "hamburg") {
		t.Fatalf("list:\n%s", list)
	}
	if strings.Contains(list, string(tok.Secret)) {
		t.Fatal("list shows the secret")
	}
	mustCLI(t, "enroll-token", "delete", "--data", data, tok.ID)
	if list := mustCLI(t, "enroll-token", "list", "--data", data); strings.Contains(list, tok.ID) {
		t.Fatalf("deleted token still listed:\n%s", list)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"site with a space", []string{"--site", "a b"}, "space"},
		{"no uses", []string{"--site", "s", "--uses", "0"}, "--uses"},
		{"bad expiry", []string{"--site", "s", "--expires", "soon"}, "--expires"},
		{"bad service URL", []string{"--site", "s", "--service", "ftp://x"}, "service URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"enroll-token", "create", "--data", data, "--origin", "http://127.0.0.1:8080",
				"--service", "http://127.0.0.1:8446", "--root", rootFile}, tc.args...)
			_, err := runCLI(t, t.Context(), args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
