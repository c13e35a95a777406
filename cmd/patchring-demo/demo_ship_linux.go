//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// The ship: an offline site. Its agents and two devices that run no agent
// are network namespaces on one bridge, with no route anywhere: the origin
// and the vendor (on the host's 127.0.0.1) cannot be reached. The admin
// enrolls the ship's agents ashore and carries the fleet's signed
// repository, with a pinned apt snapshot, to it in bundles; one agent
// imports a bundle and the other takes the metadata, the apt indices and
// the .debs from it. The policy enables the ARP sweep for the ship, which
// finds the two devices.

// shipDevices run no agent. Their MACs carry their makers' IEEE OUIs
// (Brother, Axis), which the unmanaged list names.
var shipDevices = []struct{ name, mac string }{
	{"printer", "00:80:77:31:00:50"},
	{"camera", "b8:a4:4f:31:00:51"},
}

// shipNet is the ship's LAN: a bridge in its own namespace, and a
// namespace per agent and device on it.
type shipNet struct {
	prefix string
	spaces []string // created, in order
}

const shipSubnet = "10.231.0."

// shipNSPrefix and the demo's pid start its namespaces' names, so that demos do not
// collide and a killed demo's namespaces can be told apart.
const shipNSPrefix = "prdemo"

// startShip builds the ship's LAN, enrolls and starts its agents, and
// imports a first bundle: the policy as it is and the vendor's apt
// archive with acme-tool 1.0. It is skipped, and says why, where network
// namespaces cannot be made.
func (d *demo) startShip(ctx context.Context, debs []string, rootFile, repoDir, keys string) error {
	d.step("ship: an offline site. Three agents and two devices that run no agent (a printer, a camera) share a LAN (network namespaces on one bridge) with no route to the origin or the vendor")
	if os.Geteuid() != 0 {
		d.note("skipped: network namespaces need root")
		return nil
	}
	if _, err := exec.LookPath("ip"); err != nil {
		d.note("skipped: the ship's LAN needs the ip command (Debian package iproute2)")
		return nil
	}
	net := &shipNet{prefix: fmt.Sprintf("%s%d", shipNSPrefix, os.Getpid())}
	d.cleanups = append(d.cleanups, net.destroy)
	removeStaleShips()
	lan, err := net.build()
	if err != nil {
		return fmt.Errorf("ship: %w", err)
	}
	d.note("%s", lan)
	d.note("the admin enrolled the ship's machines ashore with the ship's tokens; afloat they reach nothing beyond the ship")
	for i, spec := range shipFleet {
		spec.netns, spec.ip = net.ns(spec.name), shipSubnet+strconv.Itoa(11+i)
		a, err := d.startAgent(ctx, spec, debs, rootFile)
		if err != nil {
			return err
		}
		d.ship = append(d.ship, a)
		d.note("%-15s site %-7s tags %-6s pid %d, on %s in namespace %s", spec.name, spec.site, spec.tagList(), a.cmd.Process.Pid, spec.ip, spec.netns)
	}
	d.step("admin: carry the fleet's repository to the ship in a bundle, with a signed snapshot of the vendor's apt archive pinned in it; each of the ship's agents imports it before it sails")
	if d.shipBundles[0], err = d.shipBundle(ctx, repoDir, keys, "ship-1.tar.gz"); err != nil {
		return err
	}
	for _, a := range d.ship {
		if err := d.cli(ctx, "--socket", a.sock, "bundle", "import", d.shipBundles[0]); err != nil {
			return err
		}
	}
	return nil
}

// shipRelease brings the release to the ship: a newer bundle, imported on
// the ship's pilot; the older one replayed after it is refused.
func (d *demo) shipRelease(ctx context.Context, repoDir, keys string) error {
	if len(d.ship) == 0 {
		return nil
	}
	d.step("admin: a newer bundle for the ship with the release; the ship's pilot imports it, and its peers take it over the ship's LAN")
	var err error
	if d.shipBundles[1], err = d.shipBundle(ctx, repoDir, keys, "ship-2.tar.gz"); err != nil {
		return err
	}
	d.shipCopies++
	if err := d.cli(ctx, "--socket", d.ship[0].sock, "bundle", "import", d.shipBundles[1]); err != nil {
		return err
	}
	d.note("the first bundle, replayed (a stale copy found on the ship): the agent refuses older signed metadata")
	if err := d.cli(ctx, "--socket", d.ship[0].sock, "bundle", "import", d.shipBundles[0]); err == nil {
		return errors.New("the ship's pilot imported an older bundle after a newer one")
	}
	return nil
}

// shipBundle runs `patchring bundle create` with the vendor's archive
// pinned: acme-tool and libacme at their newest versions.
func (d *demo) shipBundle(ctx context.Context, repoDir, keys, name string) (string, error) {
	out := filepath.Join(d.work, name)
	err := d.cli(ctx, "bundle", "create", "--repo", repoDir, "--keys", keys, "--out", out,
		"--apt-source", d.aptRepo.URL(), "--apt-suite", d.aptRepo.Config().Codename, "--apt-keyring", d.aptKeyring,
		"--apt-package", "acme-tool", "--apt-package", "libacme")
	return out, err
}

// shipScene waits for the ship's agents to install the release from the
// bundle and their peers, shows where their apt bytes came from, and
// lists the devices the sweep found.
func (d *demo) shipScene(ctx context.Context) error {
	if len(d.ship) == 0 {
		return nil
	}
	d.step("ship: its agents installed the release offline: the pilot from the bundle, the broad nodes from their peers once the ship's pilot ring succeeded")
	for _, a := range d.ship {
		err := d.poll(ctx, a, "acme-tool 1.1 from the ship's bundle", func() (bool, error) {
			v := d.view(ctx, a)
			return v.settled && v.version == "1.1" && v.lib == "1.1", nil
		})
		if err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "          NODE\tRING\tACME-TOOL\tLIBACME\tAPT FROM VENDOR\tFROM PEERS\tFROM STORE\tLAST TRANSACTION")
	for _, a := range d.ship {
		v := d.view(ctx, a)
		var vendor, peers, store int64
		if p, err := a.client.Peers(ctx); err == nil {
			for _, t := range p.Apt {
				vendor, peers, store = vendor+t.FromVendor, peers+t.FromPeers, store+t.FromStore
			}
		}
		fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%d B\t%d B\t%d B\t%s\n", a.name, v.ring, v.version, v.lib, vendor, peers, store, v.last)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	d.note("the signed advisory data reached the ship in the bundle too (the pilot's store), and its peers from it: ship-desk-2 knows the CVE is fixed")
	if err := d.cli(ctx, "--socket", d.ship[len(d.ship)-1].sock, "vulns"); err != nil {
		return err
	}

	d.step("ship: the devices on its LAN that run no agent, found by the ARP sweep the policy enables for the ship")
	a := d.ship[len(d.ship)-1]
	err := d.poll(ctx, a, "the ship's devices", func() (bool, error) {
		u, err := a.client.Unmanaged(ctx)
		if err != nil {
			return false, err
		}
		found := 0
		for _, dev := range shipDevices {
			if slices.ContainsFunc(u.Devices, func(x apitypes.UnmanagedDevice) bool { return strings.EqualFold(x.MAC, dev.mac) }) {
				found++
			}
		}
		return found == len(shipDevices), nil
	})
	if err != nil {
		return err
	}
	return d.cli(ctx, "--socket", a.sock, "fleet", "unmanaged")
}

// ns is the namespace of the ship's member name.
func (n *shipNet) ns(name string) string { return n.prefix + "-" + name }

// build makes the bridge and a namespace for every agent and device, and
// describes the LAN.
func (n *shipNet) build() (string, error) {
	lan := n.ns("lan")
	if err := n.add(lan); err != nil {
		return "", err
	}
	// The switch speaks no IPv6 of its own: its ports' link-local
	// announcements would list it as devices.
	if out, err := exec.Command("ip", "netns", "exec", lan, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6").CombinedOutput(); err != nil {
		return "", fmt.Errorf("disable IPv6 on the ship's switch: %v: %s", err, out)
	}
	if err := ipRun("-n", lan, "link", "add", "br0", "type", "bridge"); err != nil {
		return "", err
	}
	if err := ipRun("-n", lan, "link", "set", "br0", "up"); err != nil {
		return "", err
	}
	type member struct{ name, ip, mac string }
	var members []member
	for i, spec := range shipFleet {
		members = append(members, member{spec.name, shipSubnet + strconv.Itoa(11+i), ""})
	}
	for i, dev := range shipDevices {
		members = append(members, member{dev.name, shipSubnet + strconv.Itoa(50+i), dev.mac})
	}
	var desc []string
	for i, m := range members {
		ns, port := n.ns(m.name), fmt.Sprintf("p%d", i)
		if err := n.add(ns); err != nil {
			return "", err
		}
		cmds := [][]string{
			{"link", "add", port, "netns", lan, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", lan, "link", "set", port, "master", "br0", "up"},
			{"-n", ns, "addr", "add", m.ip + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "link", "set", "eth0", "up"},
		}
		if m.mac != "" {
			cmds = slices.Insert(cmds, 2, []string{"-n", ns, "link", "set", "eth0", "address", m.mac})
		}
		for _, c := range cmds {
			if err := ipRun(c...); err != nil {
				return "", err
			}
		}
		desc = append(desc, m.name+" "+m.ip)
	}
	return "the ship's LAN " + shipSubnet + "0/24: " + strings.Join(desc, ", ") + "; no default route", nil
}

func (n *shipNet) add(ns string) error {
	if err := ipRun("netns", "add", ns); err != nil {
		return err
	}
	n.spaces = append(n.spaces, ns)
	return nil
}

// destroy removes the namespaces (their veths go with them). The demo's
// cleanups stop the ship's agents first.
func (n *shipNet) destroy() {
	for _, ns := range slices.Backward(n.spaces) {
		if err := ipRun("netns", "del", ns); err != nil {
			fmt.Fprintf(os.Stderr, "patchring-demo: %v\n", err)
		}
	}
}

// removeStaleShips removes the namespaces of demos that were killed before
// they could clean up (their pid no longer runs).
func removeStaleShips() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], shipNSPrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(f[0], shipNSPrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			ipRun("netns", "del", f[0])
		}
	}
}

// ipRun runs ip with a bounded wait.
func ipRun(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
