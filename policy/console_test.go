package policy

import (
	"strings"
	"testing"
)

func TestConsoleSetting(t *testing.T) {
	t.Parallel()
	pin := strings.Repeat("ab", 32)
	p := mustParse(t, base+"console:\n  url: https://console.example:8443\n  tls_pin: "+pin+"\n")
	if p.Console == nil || p.Console.URL != "https://console.example:8443" || p.Console.TLSPin != pin {
		t.Fatalf("console = %+v", p.Console)
	}
	// The signed form carries it, and reads back equal.
	js, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseJSON(js, "policy.json")
	if err != nil || q.Console == nil || *q.Console != *p.Console {
		t.Fatalf("round trip: %+v %v", q.Console, err)
	}
	// Without the setting nothing is written (older agents read it).
	js, err = MarshalCanonical(mustParse(t, base))
	if err != nil || strings.Contains(string(js), "console") {
		t.Fatalf("no console: %s %v", js, err)
	}
	if mustParse(t, base+"console: {url: \"http://127.0.0.1:8480\"}\n").Console.URL != "http://127.0.0.1:8480" {
		t.Error("loopback http refused")
	}

	for _, tc := range []struct{ src, want string }{
		{"console: {url: \"http://console.example\"}", "plain http only to a loopback address"},
		{"console: {url: \"ftp://console.example\"}", "want https://HOST"},
		{"console: {url: \"https://\"}", "want https://HOST"},
		{"console: {url: \"https://u:p@console.example\"}", "no credentials"},
		{"console: {url: \"https://console.example/?x=1\"}", "no credentials, query"},
		{"console: {tls_pin: " + pin + "}", "console.url: is required"},
		{"console: {url: \"https://console.example\", tls_pin: ABC}", "64 lowercase hex"},
		{"console: {url: \"http://127.0.0.1:1\", tls_pin: " + pin + "}", "a pin needs an https"},
		{"console: {url: \"https://console.example\", pin: x}", `unknown key "pin"`},
	} {
		_, err := Parse([]byte(base+tc.src+"\n"), "policy.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}
