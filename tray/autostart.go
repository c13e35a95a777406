package tray

import _ "embed"

// AutostartEntry is the XDG autostart entry that starts `patchring tray`
// in every desktop session. patchringd install writes it to
// /etc/xdg/autostart on Linux.
//
//go:embed patchring-tray.desktop
var AutostartEntry []byte

// AutostartFile is the entry's file name.
const AutostartFile = "patchring-tray.desktop"
