package apttest

import (
	"os"
	"testing"
)

// FuzzReadDebInfo feeds the .deb control reader arbitrary bytes, seeded
// with a real package built by BuildDeb.
func FuzzReadDebInfo(f *testing.F) {
	deb, err := BuildDeb(f.TempDir(), Package{Name: "seed", Version: "1:1.0-1", Files: []File{{Path: "/etc/seed", Body: []byte("x"), Conffile: true}}})
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("!<arch>\ncontrol.tar     0           0     0     100644  0         `\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := readDebInfo(bytesReader(data))
		if err != nil {
			return
		}
		if info.Package == "" || info.Version == "" || info.Architecture == "" {
			t.Fatalf("accepted incomplete control %+v", info)
		}
	})
}
