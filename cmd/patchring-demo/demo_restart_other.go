//go:build !linux

package main

import "context"

// restartScene needs a Debian root entered with unshare+chroot (Linux).
func (d *demo) restartScene(context.Context) error {
	d.step("fewer reboots: skipped (the scene needs a Linux host for its Debian 12 root)")
	return nil
}

// prepareRootImage: nothing to prepare without Linux.
func (d *demo) prepareRootImage(context.Context) {}
