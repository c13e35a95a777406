//go:build !linux

package main

import "context"

// The ship (an offline site) runs in Linux network namespaces.
func (d *demo) startShip(context.Context, []string, string, string, string) error {
	d.step("ship: skipped (the offline site's LAN is made of Linux network namespaces)")
	return nil
}

func (d *demo) shipRelease(context.Context, string, string) error { return nil }
func (d *demo) shipScene(context.Context) error                   { return nil }
