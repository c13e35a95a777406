package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/platform/dnf/dnftest"
)

// startRPMAgent starts spec as an rpm-based endpoint: the vendor's signed
// dnf repository (createrepo_c, gpg-signed repomd.xml and packages, on
// 127.0.0.1) with acme-tool and libacme 1.0 as .rpm, a dnf installroot
// holding both, and a patchringd that drives the real dnf and rpm there
// (apt.manager: dnf). It joins its site and ring like the Debian agents.
// It sets d.releaseRPM, which publishes 1.1 of both in that repository
// when the vendor releases the patch.
func (d *demo) startRPMAgent(ctx context.Context, spec agentSpec, rootFile string) (*agent, error) {
	for _, tool := range []string{"dnf", "rpm", "createrepo_c", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the rpm-based agent needs %s (Debian packages dnf, rpm, createrepo-c, gnupg; make deps): %w", tool, err)
		}
	}
	a := &agent{agentSpec: spec, dir: filepath.Join(d.work, spec.name)}
	a.sock = filepath.Join(a.dir, "patchringd.sock")
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, err
	}
	gossipAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if d.seeds[spec.site] == "" {
		d.seeds[spec.site] = gossipAddr
	}
	signer, err := dnftest.NewSigner()
	if err != nil {
		return nil, err
	}
	d.cleanups = append(d.cleanups, func() { signer.Close() })
	repo, err := dnftest.StartRepo(dnftest.RepoConfig{Signer: signer})
	if err != nil {
		return nil, err
	}
	d.cleanups = append(d.cleanups, func() { repo.Close() })
	rpms := filepath.Join(d.work, "rpms")
	pkgs := func(version string) ([]string, error) {
		lib, err := dnftest.BuildRPM(rpms, dnftest.Package{Name: "libacme", Version: version,
			Files: []dnftest.File{{Path: "/usr/share/libacme/VERSION", Body: []byte(version + "\n")}}})
		if err != nil {
			return nil, err
		}
		tool, err := dnftest.BuildRPM(rpms, dnftest.Package{Name: "acme-tool", Version: version, Requires: []string{"libacme = " + version + "-1"},
			Files: []dnftest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte(version + "\n")}}})
		return []string{lib, tool}, err
	}
	if err := os.MkdirAll(rpms, 0o755); err != nil {
		return nil, err
	}
	v10, err := pkgs("1.0")
	if err != nil {
		return nil, err
	}
	if err := repo.Add(ctx, v10...); err != nil {
		return nil, err
	}
	sb, err := dnftest.NewSandbox(dnftest.SandboxOptions{TempDir: a.dir})
	if err != nil {
		return nil, err
	}
	d.cleanups = append(d.cleanups, func() { sb.Close() })
	if err := sb.AddRepo("acme", repo, dnftest.RepoOptions{}); err != nil {
		return nil, err
	}
	if out, err := sb.Run(ctx, "dnf", "install", "acme-tool-1.0-1"); err != nil {
		return nil, fmt.Errorf("%s: install acme-tool 1.0: %w\n%s", spec.name, err, out)
	}
	a.installed = sb.InstalledVersion
	d.releaseRPM = func() error {
		v11, err := pkgs("1.1")
		if err != nil {
			return err
		}
		return repo.Add(ctx, v11...)
	}

	rebootScript := filepath.Join(a.dir, "reboot.sh")
	os.WriteFile(rebootScript, []byte("#!/bin/sh\necho \"$(date +%T) $1\" >> \""+filepath.Join(a.dir, "rebooted")+"\"\n"), 0o755)
	// dnf_args point dnf at the sandbox's dnf.conf and repositories (the
	// agent adds --installroot itself); HOME's .rpmmacros puts rpm's
	// database inside the root.
	var dnfArgs []string
	for _, arg := range sb.DNFArgs()[2:] {
		dnfArgs = append(dnfArgs, fmt.Sprintf("%q", arg))
	}
	cfg := fmt.Sprintf(`state_dir: %s
socket: %s
hostname: %s
log_level: warn
apt:
  enabled: true
  manager: dnf
  root: %s
  dnf_args: [%s]
  check_interval: 2s
  refresh_interval: 2s
policy:
  refresh_interval: 2s
reboot:
  command: [%s, "{message}"]
report:
  interval: 3s
gossip:
  enabled: true
  listen: %s
  seeds: [%s]
  key_file: %s
  label: patchring-demo
p2p:
  enabled: true
  listen: /ip4/127.0.0.1/tcp/0
`, a.dir, a.sock, spec.name, sb.Root, strings.Join(dnfArgs, ", "), rebootScript, gossipAddr, d.seeds[spec.site], d.gossipKeyFile)
	cfgFile := filepath.Join(a.dir, "patchringd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := d.enroll(ctx, spec, cfgFile); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(a.dir, "patchringd.log"))
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command(filepath.Join(d.bin, "patchringd"), "run", "--config", cfgFile)
	a.cmd.Env = append(os.Environ(), sb.Env()...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	d.cleanups = append(d.cleanups, func() { stopAgent(a) })
	a.client = &client.Client{Socket: a.sock}
	return a, nil
}

// waitRPMAgents waits until every rpm agent ended its transaction for the
// release (dnf's runs take longer than apt's: the rings' reboot story does
// not wait for them).
func (d *demo) waitRPMAgents(ctx context.Context) error {
	for _, a := range d.agents {
		if !a.rpm {
			continue
		}
		err := d.poll(ctx, a, "its dnf transaction", func() (bool, error) {
			txs, err := a.client.History(ctx, 1)
			return err == nil && len(txs) > 0 && txs[0].Outcome != "", err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// debAgents are the demo's Debian agents: the self-update (a .deb) and
// the advisories (Debian's ecosystem) scenes are theirs.
func (d *demo) debAgents() []*agent {
	var out []*agent
	for _, a := range d.agents {
		if !a.rpm {
			out = append(out, a)
		}
	}
	return out
}
