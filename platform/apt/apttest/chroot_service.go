package apttest

import (
	"errors"
	"fmt"
	"os"
)

// ServiceScriptLog is where ServicePackage's maintainer scripts note each
// run, inside the root: one line "<version> <script> <arguments>".
const ServiceScriptLog = "/var/log/acme-scripts.log"

// ServiceHostPaths are the host files ServicePackage's scripts would
// change if they ever ran on the host; see GuardHostFiles.
var ServiceHostPaths = []string{
	"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
	"/etc/acme", "/var/lib/acme", "/usr/bin/acme", "/usr/lib/acme", "/etc/alternatives/acme", ServiceScriptLog,
}

// ServicePackage returns the package acme at version: a service whose
// maintainer scripts assume a real Debian system, as vendors' packages do.
// They use absolute paths and never $DPKG_ROOT, so they are for a Chroot,
// not a Sandbox:
//
//   - preinst: on upgrade from a newer version (dpkg --compare-versions),
//     notes "downgrade from X to V" in /var/lib/acme/downgrades;
//   - postinst configure: creates the system user and group acme with
//     adduser (once), /var/lib/acme owned by acme (0750), writes
//     /etc/acme/acme.conf naming /usr/lib/acme/acme-V, notes the
//     DPKG_ROOT and DPKG_ADMINDIR dpkg gave it in /var/lib/acme/dpkg-env,
//     from 1.1 on notes "migrated from X to V" in /var/lib/acme/migrations
//     when upgrading from an older version, and registers /usr/bin/acme
//     (which prints "acme V") with update-alternatives;
//   - prerm on remove, upgrade and deconfigure: removes its alternative;
//   - postrm purge: removes /etc/acme and /var/lib/acme, deluser acme.
//
// Every script first stops unless it runs in a test root (ChrootGuard),
// notes its run in ServiceScriptLog and fails while
// /etc/acme/fail-<script>-<version> exists (e.g. fail-postinst-1.1).
func ServicePackage(version string) Package {
	head := func(script string) string {
		flag := "/etc/acme/fail-" + script + "-" + version
		return "#!/bin/sh\nset -e\n" + ChrootGuard +
			fmt.Sprintf("echo \"%s %s $*\" >>%s\n", version, script, ServiceScriptLog) +
			fmt.Sprintf("if [ -e %s ]; then echo \"acme %s: failing on demand (%s exists)\" >&2; exit 1; fi\n", flag, script, flag)
	}
	bin := "/usr/lib/acme/acme-" + version
	return Package{
		Name:    "acme",
		Version: version,
		Files: []File{
			{Path: bin, Body: []byte("#!/bin/sh\necho acme " + version + "\n"), Mode: 0o755},
			{Path: "/usr/share/acme/VERSION", Body: []byte(version + "\n")},
		},
		Preinst: head("preinst") + `case "$1" in
upgrade)
	if dpkg --compare-versions "$2" gt "` + version + `"; then
		mkdir -p /var/lib/acme
		echo "downgrade from $2 to ` + version + `" >>/var/lib/acme/downgrades
	fi
	;;
esac
`,
		Postinst: head("postinst") + `if [ "$1" = configure ]; then
	if ! getent passwd acme >/dev/null; then
		adduser --system --group --home /var/lib/acme --no-create-home --quiet acme
	fi
	install -d -o acme -g acme -m 0750 /var/lib/acme
	echo "DPKG_ROOT=[${DPKG_ROOT-unset}] DPKG_ADMINDIR=[${DPKG_ADMINDIR-unset}]" >/var/lib/acme/dpkg-env
	mkdir -p /etc/acme
	printf 'user = acme\nstate = /var/lib/acme\nbinary = %s\n' ` + bin + ` >/etc/acme/acme.conf
	if [ -n "$2" ] && dpkg --compare-versions "$2" lt "` + version + `" && dpkg --compare-versions "` + version + `" ge 1.1; then
		echo "migrated from $2 to ` + version + `" >>/var/lib/acme/migrations
		chown acme:acme /var/lib/acme/migrations
	fi
	update-alternatives --quiet --install /usr/bin/acme acme ` + bin + ` 50
fi
`,
		Prerm: head("prerm") + `case "$1" in
remove|upgrade|deconfigure)
	update-alternatives --quiet --remove acme ` + bin + `
	;;
esac
`,
		Postrm: head("postrm") + `if [ "$1" = purge ]; then
	rm -rf /etc/acme /var/lib/acme
	deluser --system --quiet acme || true
fi
`,
	}
}

// GuardHostFiles fingerprints the host files at paths (content of
// regular files, link targets, directory listings, absence) and fails t at
// cleanup if any changed during the test. With GuardHostDB it is how
// tests of a Chroot prove the host was left alone.
func GuardHostFiles(t TB, paths ...string) {
	t.Helper()
	before, err := fingerprintFiles(paths)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		after, err := fingerprintFiles(paths)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for i, p := range paths {
			if before[i] != after[i] {
				t.Fatalf("host file %s changed during the test: was %s, now %s", p, before[i], after[i])
			}
		}
	})
}

func fingerprintFiles(paths []string) ([]string, error) {
	res := make([]string, len(paths))
	for i, p := range paths {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			res[i] = "absent"
			continue
		case err != nil:
			return nil, fmt.Errorf("fingerprint host file %s: %w", p, err)
		}
		var h string
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			h, err = os.Readlink(p)
			h = "symlink to " + h
		case fi.IsDir():
			h, err = hashDir(p)
			h = "directory " + h
		default:
			h, err = hashFile(p)
			h = "file sha256 " + h
		}
		if err != nil {
			return nil, fmt.Errorf("fingerprint host file %s: %w", p, err)
		}
		res[i] = h
	}
	return res, nil
}
