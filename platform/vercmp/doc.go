// Package vercmp owns version ordering for the package managers patchring
// drives: Debian's (the exact algorithm and syntax rules of dpkg's
// parseversion and verrevcmp) and RPM's (rpmvercmp with "~" and "^", and
// epoch:version-release comparison as rpm's rpmverCmp does it).
//
// Both comparators return -1, 0 or +1 and an error for a version string the
// package manager itself would reject. The functions are pure and safe for
// concurrent use.
package vercmp
