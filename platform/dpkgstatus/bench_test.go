package dpkgstatus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// synthStatus writes a realistic dpkg status file of n packages: the field
// set, field order and sizes of a Debian 12 system (about 900 bytes per
// stanza, multi-line descriptions, conffiles, a few odd states).
func synthStatus(n int) []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	archs := []string{"amd64", "amd64", "amd64", "all", "all", "i386"}
	states := []string{"install ok installed", "install ok installed", "install ok installed", "install ok installed",
		"hold ok installed", "deinstall ok config-files", "install reinstreq half-installed", "install ok unpacked"}
	words := []string{"library", "the", "runtime", "support", "for", "shared", "files", "utilities", "development", "GNU", "data", "system", "tools", "daemon", "client", "with"}
	para := func(nw int) string {
		var b bytes.Buffer
		for i := range nw {
			if i > 0 {
				if i%12 == 0 {
					b.WriteString("\n ")
				} else {
					b.WriteByte(' ')
				}
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		return b.String()
	}
	var b bytes.Buffer
	b.Grow(n * 950)
	for i := range n {
		name := fmt.Sprintf("lib%s%d-%d", words[rng.IntN(len(words))], i%97, i)
		src := fmt.Sprintf("src%d", i/3)
		fmt.Fprintf(&b, "Package: %s\nStatus: %s\nPriority: optional\nSection: libs\nInstalled-Size: %d\n", name, states[rng.IntN(len(states))], rng.IntN(100000))
		fmt.Fprintf(&b, "Maintainer: Debian Maintainers <team%d@lists.debian.org>\nArchitecture: %s\nMulti-Arch: same\n", i%50, archs[rng.IntN(len(archs))])
		if i%3 != 0 {
			fmt.Fprintf(&b, "Source: %s", src)
			if i%7 == 0 {
				fmt.Fprintf(&b, " (%d.%d-%d)", i%9, i%13, i%4+1)
			}
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "Version: %d:%d.%d.%d-%d+deb12u%d\n", i%3, i%11, i%17, i%23, i%5+1, i%4)
		fmt.Fprintf(&b, "Depends: libc6 (>= 2.34), libgcc-s1 (>= 3.0), libstdc++6 (>= 12), zlib1g (>= 1:1.2.0), lib%d (= ${binary:Version})\n", i%40)
		if i%4 == 0 {
			fmt.Fprintf(&b, "Conffiles:\n /etc/%s/%s.conf 0123456789abcdef0123456789abcdef\n /etc/default/%s 0123456789abcdef0123456789abcdef\n", name, name, name)
		}
		fmt.Fprintf(&b, "Description: %s\n %s\n .\n %s\nHomepage: https://example.org/%s\n\n", para(6), para(36), para(18), name)
	}
	return b.Bytes()
}

func BenchmarkDpkgParse5000(b *testing.B) {
	data := synthStatus(5000)
	pkgs, err := Parse(data)
	if err != nil || len(pkgs) != 5000 {
		b.Fatalf("synthetic status: %d packages, %v", len(pkgs), err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "inventory_dpkg_parse_5000@ms")
	b.ReportMetric(float64(len(data))/5000, "bytes/pkg")
}

func BenchmarkReadDBThisMachine(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadDB("/var/lib/dpkg/status"); err != nil {
			b.Fatal(err)
		}
	}
}
