package apt

import (
	"slices"
	"testing"
)

func TestParseFileList(t *testing.T) {
	t.Parallel()
	in := "/.\n/usr\n/usr/lib/libfoo.so.1\ndiverted by dash to: /usr/share/man/man1/sh.distrib.1.gz\npackage diverts others to: /bin/sh.distrib\n\nnot a path\n"
	want := []string{"/.", "/usr", "/usr/lib/libfoo.so.1", "/usr/share/man/man1/sh.distrib.1.gz", "/bin/sh.distrib"}
	if got := ParseFileList([]byte(in)); !slices.Equal(got, want) {
		t.Errorf("ParseFileList = %q, want %q", got, want)
	}
}
