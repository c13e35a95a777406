package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

// demoConsole is the fleet console of the demo: a real `patchring console
// serve` on a loopback port, SQLite in the demo's directory, checking each
// record's credential against the repository's fleet.json.
type demoConsole struct {
	url, data, tokenFile string
	account, password    string
	cmd                  *exec.Cmd
	done                 chan error
}

// startConsole starts the console and names it in the policy file (before
// the admin signs it): agents read the console's URL only from the signed
// policy, and each site's reporter sends its members' signed records there.
func (d *demo) startConsole(ctx context.Context, polFile, repoDir string) error {
	d.step("admin: start the fleet console (SQLite, loopback) and name it in the policy; it checks every record's credential against fleet.json")
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	c := &demoConsole{url: "http://" + addr, data: filepath.Join(d.work, "console"), account: "demo-admin", password: "demo-console-password",
		tokenFile: filepath.Join(d.work, "console.token"), done: make(chan error, 1)}
	patchring := filepath.Join(d.bin, "patchring")
	add := exec.CommandContext(ctx, patchring, "console", "account", "add", c.account, "--role", "viewer", "--data", c.data)
	add.Stdin = strings.NewReader(c.password + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("console account add: %v: %s", err, out)
	}
	tok, err := exec.CommandContext(ctx, patchring, "console", "token", "add", "--data", c.data, "--account", c.account, "--label", "demo").Output()
	if err != nil {
		return fmt.Errorf("console token add: %w", err)
	}
	if err := os.WriteFile(c.tokenFile, tok, 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(d.work, "console.log"))
	if err != nil {
		return err
	}
	c.cmd = exec.Command(patchring, "console", "serve", "--data", c.data, "--listen", addr, "--fleet-repo", repoDir)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start the console: %w", err)
	}
	go func() { c.done <- c.cmd.Wait(); logf.Close() }()
	d.cleanups = append(d.cleanups, func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(15 * time.Second):
				c.cmd.Process.Kill()
				<-c.done
			}
		}
	})
	d.console = c
	pol, err := os.ReadFile(polFile)
	if err != nil {
		return err
	}
	section := fmt.Sprintf("\n# The fleet console sites report to (added by the demo).\nconsole:\n  url: %s\n", c.url)
	if err := os.WriteFile(polFile, append(pol, section...), 0o644); err != nil {
		return err
	}
	d.note("console at %s (log %s); the policy gains: console: {url: %s}", c.url, filepath.Join(d.work, "console.log"), c.url)
	return nil
}

// showConsole waits until both sites' reporters delivered every enrolled
// agent's latest state, prints the console's fleet overview from the
// terminal and saves a screenshot of the dashboard's overview.
func (d *demo) showConsole(ctx context.Context) error {
	c := d.console
	d.step("the fleet console: each site's reporter sent its members' signed records; the overview (rings x sites)")
	want := 0
	for _, a := range d.agents {
		if !a.noCredential {
			want++
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, err := c.nodes(ctx)
		if err == nil && n >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the console lists %d nodes after 90s, want %d (%v; log %s)", n, want, err, filepath.Join(d.work, "console.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-c.done:
			return fmt.Errorf("the console exited: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := d.cli(ctx, "fleet", "--console", c.url, "--console-token-file", c.tokenFile); err != nil {
		return err
	}
	if err := d.cli(ctx, "fleet", "--console", c.url, "--console-token-file", c.tokenFile, "vulns"); err != nil {
		d.note("the console's vulnerability view: %v", err)
	}
	d.note("the intruder without a credential is not on the console: a record needs its node's credential from the fleet CA")
	shot, err := c.screenshot(ctx)
	if err != nil {
		d.note("no dashboard screenshot: %v", err)
		return nil
	}
	file := filepath.Join(d.work, "console-overview.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		return err
	}
	d.note("dashboard screenshot (headless Chromium, logged in as %s): %s", c.account, file)
	return nil
}

// nodes counts the nodes of the console's overview (JSON API).
func (c *demoConsole) nodes(ctx context.Context) (int, error) {
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/api/v1/overview", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("overview: %s", resp.Status)
	}
	var rows []struct {
		Nodes int `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rows {
		n += r.Nodes
	}
	return n, nil
}

// screenshot logs in to the dashboard in headless Chromium and captures the
// overview.
func (c *demoConsole) screenshot(ctx context.Context) ([]byte, error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		return nil, errors.New("no chromium (Debian package chromium)")
	}
	profile, err := os.MkdirTemp("", "patchring-demo-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 640), chromedp.Flag("disable-gpu", true),
		// Chromium's own temporary files (org.chromium.Chromium.*) go into
		// the profile directory too, which is removed below.
		chromedp.Env("TMPDIR="+profile))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	tctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()
	if _, err := chromedp.Run(tctx, chromedp.Steps(
		chromedp.Navigate(c.url+"/overview"),
		chromedp.WaitVisible(chromedp.ID("account")),
		chromedp.SendKeys(chromedp.ID("account"), c.account),
		chromedp.SendKeys(chromedp.ID("password"), c.password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("table")),
	)); err != nil {
		return nil, fmt.Errorf("log in to the dashboard: %w", err)
	}
	return chromedp.Run(tctx, chromedp.CaptureScreenshot())
}
