// Package dnftest builds what tests of RPM package management need, all
// with the real tools and nothing on the host's package databases:
//
//   - RPM packages built with nfpm (BuildRPM), with scriptlets;
//   - a throwaway OpenPGP key in its own gpg home (NewSigner) that signs
//     packages with rpmsign and repomd.xml with a detached signature;
//   - a local repository made with createrepo_c (updateinfo.xml added
//     with modifyrepo_c) served on 127.0.0.1 (StartRepo), whose files a
//     test can tamper with (Override);
//   - a sandbox root driven by the real `dnf --installroot ROOT -c CONF`
//     (NewSandbox): its own rpm database, dnf cache, history and logs
//     inside ROOT, a minimal /bin/sh for scriptlets;
//   - a fingerprint of the host's rpm and dnf state (GuardHost) that
//     fails a test whose run changed it.
//
// dnf with --installroot still reads its plugins and rpm its macros from
// the host, and Debian's rpm keeps its database in ~/.rpmdb. The sandbox
// therefore runs dnf and rpm with HOME set to a directory of its own whose
// .rpmmacros sets %_dbpath to /var/lib/rpm (inside the root, as on RHEL
// and Fedora), disables the plugins that write outside the root ("local" of
// dnf-plugins-core, and generate_completion_cache, which writes the host's
// /var/cache/dnf/packages.db whatever the installroot) and sets
// releasever, reposdir, cachedir, logdir and persistdir explicitly.
package dnftest

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}
