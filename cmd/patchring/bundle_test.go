package main

import (
	"strings"
	"testing"
)

func TestParseAptList(t *testing.T) {
	srcs, err := parseAptList("sites.list", `# security updates for the plant
http://deb.debian.org/debian-security bookworm-security /usr/share/keyrings/debian-archive-keyring.gpg openssl libssl3

http://deb.debian.org/debian bookworm-updates /k.gpg   # no packages: indices only
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Suite != "bookworm-security" || strings.Join(srcs[0].Packages, ",") != "openssl,libssl3" ||
		srcs[0].Keyrings[0] != "/usr/share/keyrings/debian-archive-keyring.gpg" || len(srcs[1].Packages) != 0 {
		t.Fatalf("parsed %+v", srcs)
	}
	if _, err := parseAptList("sites.list", "\nhttp://x bookworm\n"); err == nil || !strings.Contains(err.Error(), "sites.list:2:") {
		t.Fatalf("short line: %v", err)
	}
}
