//go:build !linux

package main

// The tray's autostart entry is an XDG (Linux desktop) mechanism; other
// OSes start `patchring tray` their own way.
func installAutostart() error { return nil }

func removeAutostart() error { return nil }
