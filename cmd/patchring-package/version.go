package main

import (
	"fmt"
	"regexp"
	"strings"
)

// pkgVersion is a build's version in each package format's terms.
type pkgVersion struct {
	// Deb is the full Debian version, upstream-revision.
	Deb string
	// RPMVersion and RPMRelease are RPM's version and release.
	RPMVersion, RPMRelease string
}

var (
	describeRE = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9A-Za-z][0-9A-Za-z.]*))?(?:-([0-9]+)-g([0-9a-f]{4,40}))?$`)
	hashOnlyRE = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
)

// versionFromDescribe maps `git describe --tags --always --dirty` output to
// versions that sort right under both dpkg's and rpm's rules:
//
//	v1.2.0-rc1          -> deb 1.2.0~rc1-1              rpm 1.2.0~rc1 release 1
//	v1.2.0-rc1-3-gabc1  -> deb 1.2.0~rc1+git3.gabc1-1   rpm 1.2.0~rc1 release 1.git3.gabc1
//	v1.2.0              -> deb 1.2.0-1                  rpm 1.2.0     release 1
//	v1.2.0-3-gabc1      -> deb 1.2.0+git3.gabc1-1       rpm 1.2.0     release 1.git3.gabc1
//	abc1234 (no tag)    -> deb 0~gabc1234-1             rpm 0~gabc1234 release 1
//
// A pre-release sorts before its release ("~"), commits after a tag after
// the tag and before the next one; "-dirty" appends ".dirty".
func versionFromDescribe(s string) (pkgVersion, error) {
	if m := hashOnlyRE.FindStringSubmatch(s); m != nil {
		v := "0~g" + m[1]
		rel := "1"
		if m[2] != "" {
			v += ".dirty"
			rel += ".dirty"
		}
		return pkgVersion{Deb: v + "-1", RPMVersion: "0~g" + m[1], RPMRelease: rel}, nil
	}
	// "-dirty" first: it would otherwise pass for a pre-release.
	dirty := strings.HasSuffix(s, "-dirty")
	m := describeRE.FindStringSubmatch(strings.TrimSuffix(s, "-dirty"))
	if m == nil {
		return pkgVersion{}, fmt.Errorf("version %q: not git describe output like v1.2.0, v1.2.0-rc1 or v1.2.0-rc1-3-gabc1234[-dirty]", s)
	}
	base, pre, n, hash := m[1], m[2], m[3], m[4]
	up := base
	if pre != "" {
		up += "~" + pre
	}
	rpmVersion, rpmRelease := up, "1"
	deb := up
	if n != "" {
		deb += "+git" + n + ".g" + hash
		rpmRelease += ".git" + n + ".g" + hash
	}
	if dirty {
		if n != "" {
			deb += ".dirty"
		} else {
			deb += "+dirty"
		}
		rpmRelease += ".dirty"
	}
	return pkgVersion{Deb: deb + "-1", RPMVersion: rpmVersion, RPMRelease: rpmRelease}, nil
}
