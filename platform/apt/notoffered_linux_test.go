package apt

import (
	"maps"
	"testing"
)

// TestNotOffered: the three ways apt-get download says a version has no
// source, as apt 2.6 prints them; other errors name nothing.
func TestNotOffered(t *testing.T) {
	stderr := "E: Can't find a source to download version '1.0' of 'acme:amd64'\n" +
		"E: Version '0.9' for 'footool' was not found\n" +
		"E: Unable to locate package nosuch\n" +
		"E: Could not get lock /var/lib/dpkg/lock-frontend\n"
	got := notOffered(stderr)
	want := map[string]bool{"acme=1.0": true, "footool=0.9": true, "nosuch": true}
	if !maps.Equal(got, want) {
		t.Errorf("notOffered = %v, want %v", got, want)
	}
}
