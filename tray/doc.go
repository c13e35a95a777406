// Package tray is patchring's desktop tray: a StatusNotifierItem icon and
// menu (fyne.io/systray over D-Bus) that shows the reboot status patchringd
// reports and lets the user restart, defer within the policy's limits or
// decline where the policy allows, plus desktop notifications
// (org.freedesktop.Notifications) with the same choices as action buttons.
//
// It talks to the daemon only through the Daemon interface, which the local
// API client implements; the daemon enforces every limit, the tray only
// offers what the daemon says is allowed.
//
// Where no StatusNotifierItem host runs (fyne.io/systray has no XEmbed
// fallback), the tray says so once in its log and carries every prompt and
// choice in notifications with actions instead.
//
// fyne.io/systray keeps process-wide state: Run may be called once per
// process.
package tray
