// Package dbustest runs a private D-Bus session bus with fake desktop
// services, so the tray can be driven headless: a fake
// org.kde.StatusNotifierWatcher that records the items registering with
// it, a fake org.freedesktop.Notifications server that records Notify calls
// and can invoke their actions, and a com.canonical.dbusmenu client that
// reads a registered item's menu, clicks its items and waits for its update
// signals.
//
// It is a test helper for the tray's tests and the demo; it does not import
// "testing" (NewBus takes the small TB interface that *testing.T meets).
package dbustest
