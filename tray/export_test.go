package tray

// IconPNGForTest returns the PNG the tray shows for an icon state name
// ("up-to-date", "restart-required", "disconnected", ...).
func IconPNGForTest(state string) []byte {
	for k := range numIcons {
		if k.String() == state {
			return iconPNG(k)
		}
	}
	return nil
}
