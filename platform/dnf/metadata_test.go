package dnf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRepomdAndPrimary(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("testdata", "createrepo_c-repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseRepomd(md)
	if err != nil {
		t.Fatal(err)
	}
	var primary *RepomdData
	for i := range entries {
		if entries[i].Type == "primary" {
			primary = &entries[i]
		}
	}
	if primary == nil || primary.ChecksumType != "sha256" || !strings.HasSuffix(primary.Location, "-primary.xml.gz") {
		t.Fatalf("repomd entries: %+v", entries)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "createrepo_c-primary.xml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckDigest(raw, primary.ChecksumType, primary.Checksum); err != nil {
		t.Fatalf("fixture's primary does not match its repomd.xml: %v", err)
	}
	if err := CheckDigest(append(raw, 0), primary.ChecksumType, primary.Checksum); err == nil {
		t.Fatal("a changed primary passed the checksum")
	}
	if err := CheckDigest(raw, "sha1", primary.Checksum); err == nil {
		t.Fatal("sha1 accepted")
	}
	pkgs, err := ParsePrimary(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 {
		t.Fatalf("primary: %+v", pkgs)
	}
	for _, p := range pkgs {
		if p.Name != "acme" || p.Arch != "x86_64" || p.ChecksumType != "sha256" || len(p.Checksum) != 64 || p.Size <= 0 ||
			p.Location != p.Name+"-"+p.EVR.String()+"."+p.Arch+".rpm" {
			t.Errorf("package %+v", p)
		}
	}
}

func TestParseRepomdRefusesIncompleteEntries(t *testing.T) {
	for name, doc := range map[string]string{
		"no checksum": `<repomd><data type="primary"><location href="a.xml.gz"/></data></repomd>`,
		"no location": `<repomd><data type="primary"><checksum type="sha256">aa</checksum></data></repomd>`,
		"not xml":     `{"repomd": 1}`,
	} {
		if _, err := ParseRepomd([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParsePrimaryRefusesOtherCompression(t *testing.T) {
	if _, err := ParsePrimary(bytes.NewReader([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0})); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("zstd primary: %v", err)
	}
}

func TestParseTransaction(t *testing.T) {
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pkgs, nothing, err := ParseTransaction(read("dnf4-assumeno-upgrade.txt"))
	if err != nil || nothing || len(pkgs) != 1 || pkgs[0].Action != TxUpgrade || pkgs[0].Name != "acme" || pkgs[0].EVR.String() != "1.1-1" || pkgs[0].Repo != "local" {
		t.Fatalf("upgrade: %+v %v %v", pkgs, nothing, err)
	}
	pkgs, _, err = ParseTransaction(read("dnf4-assumeno-remove.txt"))
	if err != nil || len(pkgs) != 1 || pkgs[0].Action != TxRemove || pkgs[0].EVR.String() != "1.0-1" {
		t.Fatalf("remove: %+v %v", pkgs, err)
	}
	if pkgs, nothing, err := ParseTransaction(read("dnf4-assumeno-nothing.txt")); err != nil || !nothing || len(pkgs) != 0 {
		t.Fatalf("nothing: %+v %v %v", pkgs, nothing, err)
	}
	wrapped := ` Package                          Arch     Version          Repository    Size
================================================================================
Upgrading:
 a-package-name-longer-than-its-column
                                  x86_64   2:1.1-1.el9      baseos        1.5 M
     replacing  old-name.x86_64 0.9-1
Installing dependencies:
 libfoo                           x86_64   3.0-1            baseos         12 k

Transaction Summary
`
	pkgs, _, err = ParseTransaction([]byte(wrapped))
	if err != nil || len(pkgs) != 3 || pkgs[0].Name != "a-package-name-longer-than-its-column" || pkgs[0].EVR.Epoch != "2" ||
		pkgs[1].Action != TxRemove || pkgs[1].Name != "old-name" || pkgs[2].Action != TxInstall || pkgs[2].Name != "libfoo" {
		t.Fatalf("wrapped: %+v %v", pkgs, err)
	}
	for name, out := range map[string]string{
		"skipped":    " Package Arch Version Repository Size\nSkipping packages with conflicts:\n a x86_64 1-1 r 1 k\nTransaction Summary\n",
		"no summary": "Error: Unable to find a match: nosuch\n",
		"cut short":  " Package Arch Version Repository Size\nInstalling:\n averylongname\n",
	} {
		if _, _, err := ParseTransaction([]byte(out)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRPMQuery(t *testing.T) {
	pkgs, err := ParseRPMQuery([]byte("gpg-pubkey\t(none)\tabc\tdef\t(none)\t1700000000\nacme\t\t1.0\t1\tx86_64\t1700000000\nbind\t32\t9.16\t1.el9\tx86_64\t1700000001\n"))
	if err != nil || len(pkgs) != 2 || pkgs[0].EVR.String() != "1.0-1" || pkgs[1].EVR.String() != "32:9.16-1.el9" || pkgs[1].InstallTime.Unix() != 1700000001 {
		t.Fatalf("%+v %v", pkgs, err)
	}
	if _, err := ParseRPMQuery([]byte("acme\t1.0\n")); err == nil {
		t.Fatal("short line accepted")
	}
}

func TestParseNeedsRestarting(t *testing.T) {
	out := "Core libraries or services have been updated since boot-up:\n  * glibc\n  * kernel\n\nReboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n"
	if got := ParseNeedsRestarting([]byte(out)); strings.Join(got, ",") != "glibc,kernel" {
		t.Fatalf("got %v", got)
	}
}
