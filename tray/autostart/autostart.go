// Package autostart holds the XDG autostart entry that starts
// `patchring tray` in every desktop session. It is apart from package tray
// so that patchringd, which installs the entry, links none of the tray's
// GUI code (fyne.io/systray, godbus).
package autostart

import _ "embed"

// Entry is the XDG autostart entry that starts `patchring tray` in every
// desktop session. patchringd install writes it to /etc/xdg/autostart on
// Linux.
//
//go:embed patchring-tray.desktop
var Entry []byte

// FileName is the entry's file name.
const FileName = "patchring-tray.desktop"
