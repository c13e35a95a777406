//go:build !linux

package main

// serviceInstalled is answered by the service manager itself on this OS.
func serviceInstalled() bool { return false }
