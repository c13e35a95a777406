package server

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil"
)

// startChromium starts Debian's headless chromium for the test; it is
// stopped (the process chromedp started, and only it) in t.Cleanup.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium (Debian package chromium; make deps installs it)")
	}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the test may run as root
		chromedp.UserDataDir(profile),
		// Chromium's temporary files (org.chromium.Chromium.*) go there too.
		chromedp.Env("TMPDIR="+profile),
		chromedp.WindowSize(1100, 640),
		chromedp.Flag("disable-gpu", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs actions with a deadline, so a stuck page fails the test
// instead of hanging it.
func step[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestBrowser drives the dashboard in a real headless Chromium: an
// unauthenticated request is refused, an operator logs in, reads the
// overview, opens a failed node, exports CSV; a cross-site form post from
// another site's page is refused. With PATCHRING_UPDATE_SCREENSHOT=1 it
// writes docs/console-overview.png.
func TestBrowser(t *testing.T) {
	ctx := startChromium(t)
	f := newFixture(t)
	f.account(t, "olga", RoleOperator)
	var envs []report.Envelope
	var failed testNode
	for i := range 12 {
		n := newTestNode(byte(40 + i))
		site := []string{"berlin", "lyon", "porto"}[i%3]
		ring := []string{"pilot", "broad", "broad"}[i%3]
		envs = append(envs, n.sign(t, 1, func(r *report.Record) {
			r.Site, r.Ring, r.Hostname = site, ring, fmt.Sprintf("%s-ws%02d", site, i)
			r.BytesFromPeers, r.BytesFromOrigin = int64(900_000*(i+1)), int64(100_000)
			switch i {
			case 0:
				r.State = "failed"
				r.Outcomes = []report.Outcome{{Source: "apt", Package: "openssl", Version: "3.0.15-1~deb12u1", Result: report.ResultRolledBack, Reason: "postinst exited 1; rolled back to 3.0.14-1~deb12u2", At: r.Time}}
			case 4:
				r.Pending = 3
			case 5:
				r.Reboot = report.Reboot{State: report.RebootDeferred, By: "marie", Deferrals: 2}
			}
		}))
		if i == 0 {
			failed = n
		}
	}
	f.ingest(t, envs...)
	base := f.srv.URL

	// Unauthenticated: the API answers 401, the dashboard sends to login.
	step(t, ctx, "anonymous API", chromedp.Navigate(base+"/api/v1/overview"))
	if body := step(t, ctx, "anonymous body", chromedp.Text(chromedp.CSS("body"))); !strings.Contains(body, "not logged in") {
		t.Fatalf("anonymous API answered:\n%s", body)
	}
	step(t, ctx, "open the dashboard", chromedp.Navigate(base+"/overview"))
	step(t, ctx, "log in", chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("account")),
		chromedp.SendKeys(chromedp.ID("account"), "olga"),
		chromedp.SendKeys(chromedp.ID("password"), "password-of-olga"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("table")),
	))
	overview := step(t, ctx, "read the overview", chromedp.Text(chromedp.CSS("table")))
	for _, want := range []string{"pilot", "berlin", "broad", "porto", "75.0%"} {
		if !strings.Contains(overview, want) {
			t.Fatalf("overview lacks %q:\n%s", want, overview)
		}
	}
	shot := step(t, ctx, "screenshot", chromedp.CaptureScreenshot())
	if len(shot) < 1000 || string(shot[1:4]) != "PNG" {
		t.Fatalf("screenshot of %d bytes is not a PNG", len(shot))
	}
	if os.Getenv("PATCHRING_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console-overview.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Open the failed node from the failures page.
	step(t, ctx, "failures", chromedp.Steps(
		chromedp.Navigate(base+"/failures"),
		chromedp.Click(chromedp.CSS(`a[href="/nodes/`+failed.id+`"]`)),
		chromedp.WaitVisible(chromedp.ID("node")),
	))
	nodeText := step(t, ctx, "node page", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(nodeText, "berlin-ws00") || !strings.Contains(nodeText, "postinst exited 1") {
		t.Fatalf("node page:\n%s", nodeText)
	}

	// Export CSV: the failures list downloads as a file.
	dir := t.TempDir()
	step(t, ctx, "allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
		return err
	}))
	step(t, ctx, "failures page", chromedp.Steps(chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("csv"))))
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	progress := chromedp.Events(dctx, cdpbrowser.DownloadProgress)
	step(t, ctx, "export CSV", chromedp.Click(chromedp.ID("csv")))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("download canceled")
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil || len(recs) != 2 || recs[0][0] != "When" || recs[1][1] != "berlin-ws00" || recs[1][6] != "rolled_back" {
		t.Fatalf("downloaded CSV %v: %q", err, recs)
	}

	// A page on another site posts a form to the console: refused, and
	// the node is still there.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<html><body onload="document.forms[0].submit()"><form method="post" action="%s/nodes/%s/forget"><input name="csrf" value="guess"></form></body></html>`, base, failed.id)
	}))
	t.Cleanup(evil.Close)
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	step(t, ctx, "visit the other site", chromedp.Navigate(evilURL))
	// The page navigates on its own: poll (a query during the navigation
	// fails) until the console's answer is shown.
	var body string
	testutil.WaitFor(t, 30*time.Second, "the console's answer to the cross-site post", func() error {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		loc, err := chromedp.Run(qctx, chromedp.Location())
		if err != nil || !strings.HasPrefix(loc, base) {
			return fmt.Errorf("at %q (%v)", loc, err)
		}
		body, err = chromedp.Run(qctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil || !strings.Contains(body, "error") {
			return fmt.Errorf("body %q (%v)", body, err)
		}
		return nil
	})
	if _, err := f.st.Node(t.Context(), failed.id); err != nil {
		t.Fatalf("cross-site post forgot the node: %v", err)
	}
	if log, _ := f.st.AuditLog(t.Context(), 10); len(log) != 1 || log[0].Action != "login" {
		t.Fatalf("audit log after the refused post: %+v", log)
	}
}

func ptr[T any](v T) *T { return &v }

// TestBrowserFleetViews opens the rollouts, vulnerabilities and unmanaged
// devices views in a real headless Chromium: a release's page draws its
// chart, the vulnerability filter form narrows to one CVE's nodes, the
// unmanaged list names the devices. With PATCHRING_UPDATE_SCREENSHOT=1 it
// writes docs/console-rollout.png, docs/console-vulns.png and
// docs/console-unmanaged.png.
func TestBrowserFleetViews(t *testing.T) {
	ctx := startChromium(t)
	f := newFixture(t)
	f.account(t, "vic", RoleViewer)
	seedFleet(t, f)
	base := f.srv.URL
	step(t, ctx, "log in", chromedp.Steps(
		chromedp.Navigate(base+"/rollouts"),
		chromedp.WaitVisible(chromedp.ID("account")),
		chromedp.SendKeys(chromedp.ID("account"), "vic"),
		chromedp.SendKeys(chromedp.ID("password"), "password-of-vic"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("table")),
	))
	shot := func(name string) {
		t.Helper()
		png := step(t, ctx, "screenshot of "+name, chromedp.FullScreenshot(100))
		if len(png) < 1000 {
			t.Fatalf("screenshot of %s: %d bytes", name, len(png))
		}
		if os.Getenv("PATCHRING_UPDATE_SCREENSHOT") == "1" {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "console-"+name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Rollouts: follow the release's link to its chart.
	step(t, ctx, "open the release", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`main table a`)),
		chromedp.WaitVisible(chromedp.ID("chart")),
	))
	if n := step(t, ctx, "chart lines", chromedp.Evaluate[int](`document.querySelectorAll("#chart polyline").length`)); n != 8 {
		t.Fatalf("chart has %d lines, want 8 (4 series, succeeded and failed)", n)
	}
	text := step(t, ctx, "rollout page", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"libssl3 " + fleetVersion, "5 at 2 site(s)", "broad", "lyon"} {
		if !strings.Contains(text, want) {
			t.Fatalf("rollout page lacks %q:\n%s", want, text)
		}
	}
	shot("rollout")

	// Vulnerabilities: the fleet's exposure, then the filter form.
	step(t, ctx, "vulns", chromedp.Steps(chromedp.Navigate(base+"/vulns"), chromedp.WaitVisible(chromedp.ID("filter"))))
	text = step(t, ctx, "vulns table", chromedp.Text(chromedp.CSS("main table")))
	if !strings.Contains(text, "CVE-2026-1111") || !strings.Contains(text, "berlin (3), lyon (3)") {
		t.Fatalf("vulns:\n%s", text)
	}
	shot("vulns")
	step(t, ctx, "filter by CVE", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`#filter input[name="cve"]`), "CVE-2026-1111"),
		chromedp.Submit(chromedp.CSS(`#filter input[name="cve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main table a[href^="/nodes/"]`)),
	))
	text = step(t, ctx, "exposed nodes", chromedp.Text(chromedp.CSS("main table")))
	for _, want := range []string{"berlin-ws04", "lyon-ws03", "lyon-ws05", "3.0.15-1~deb12u1"} {
		if !strings.Contains(text, want) {
			t.Fatalf("nodes exposed to CVE-2026-1111 lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "CVE-2026-2222") {
		t.Fatalf("the filter kept another CVE:\n%s", text)
	}

	// Unmanaged devices.
	step(t, ctx, "unmanaged", chromedp.Steps(chromedp.Navigate(base+"/unmanaged"), chromedp.WaitVisible(chromedp.CSS("main table"))))
	text = step(t, ctx, "unmanaged table", chromedp.Text(chromedp.CSS("main table")))
	for _, want := range []string{"00:1b:a9:aa:bb:01", "Brother Industries", "printer-2f", "berlin-ws00, berlin-ws02", "fe80::ba27:ebff:fe00:7"} {
		if !strings.Contains(text, want) {
			t.Fatalf("unmanaged devices lack %q:\n%s", want, text)
		}
	}
	shot("unmanaged")
}
