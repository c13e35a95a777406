// Package client reads the fleet console's JSON API with an API token: what
// `patchring fleet --console URL` shows in the terminal.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/patchring/patchring/console/store"
)

// Client reads one console. The zero value of HTTP uses a client with a
// 30-second timeout.
type Client struct {
	URL   string // https://console.example:8480
	Token string
	HTTP  *http.Client
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	base, err := url.Parse(strings.TrimRight(c.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("console URL %q: want http(s)://host[:port]", c.URL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+path, nil)
	if err != nil {
		return fmt.Errorf("console %s: %w", path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("console %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("console %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("console %s: %s: %s", path, resp.Status, e.Error)
		}
		return fmt.Errorf("console %s: %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("console %s: %w", path, err)
	}
	return nil
}

// Overview is the fleet's compliance, rings x sites.
func (c *Client) Overview(ctx context.Context) ([]store.OverviewRow, error) {
	var v []store.OverviewRow
	return v, c.get(ctx, "/api/v1/overview", &v)
}

// Failures lists failed installs and rollbacks.
func (c *Client) Failures(ctx context.Context) ([]store.Failure, error) {
	var v []store.Failure
	return v, c.get(ctx, "/api/v1/failures", &v)
}

// Sites lists the sites.
func (c *Client) Sites(ctx context.Context) ([]store.Site, error) {
	var v []store.Site
	return v, c.get(ctx, "/api/v1/sites", &v)
}

// Reboots lists nodes with a reboot pending, deferred or refused.
func (c *Client) Reboots(ctx context.Context) ([]store.Node, error) {
	var v []store.Node
	return v, c.get(ctx, "/api/v1/reboots", &v)
}

// Vulns is the fleet's vulnerability exposure; with a filter also the
// nodes it selects.
func (c *Client) Vulns(ctx context.Context, f store.VulnFilter) (store.VulnsPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"cve": f.CVE, "package": f.Package, "site": f.Site} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.KEV {
		q.Set("kev", "1")
	}
	path := "/api/v1/vulns"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v store.VulnsPage
	return v, c.get(ctx, path, &v)
}

// Unmanaged lists the unmanaged devices of one site ("" every site).
func (c *Client) Unmanaged(ctx context.Context, site string) ([]store.UnmanagedDevice, error) {
	path := "/api/v1/unmanaged"
	if site != "" {
		path += "?site=" + url.QueryEscape(site)
	}
	var v []store.UnmanagedDevice
	return v, c.get(ctx, path, &v)
}

// Releases lists the releases the fleet reported outcomes for.
func (c *Client) Releases(ctx context.Context) ([]store.Release, error) {
	var v []store.Release
	return v, c.get(ctx, "/api/v1/rollouts", &v)
}
