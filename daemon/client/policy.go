package client

import (
	"context"
	"net/http"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Policy returns the signed policy as it applies to this node.
func (c *Client) Policy(ctx context.Context) (apitypes.EffectivePolicy, error) {
	var p apitypes.EffectivePolicy
	err := c.Do(ctx, http.MethodGet, "/policy", nil, &p)
	return p, err
}

// RefreshPolicy verifies the fleet's repository now (admin).
func (c *Client) RefreshPolicy(ctx context.Context) (apitypes.EffectivePolicy, error) {
	var p apitypes.EffectivePolicy
	err := c.Do(ctx, http.MethodPost, "/policy/refresh", nil, &p)
	return p, err
}

// ImportBundle makes the agent verify and import an offline bundle at an
// absolute path it can read (admin).
func (c *Client) ImportBundle(ctx context.Context, path string) (apitypes.BundleImport, error) {
	var out apitypes.BundleImport
	err := c.Do(ctx, http.MethodPost, "/bundle/import", apitypes.BundleImportRequest{Path: path}, &out)
	return out, err
}

// ExportReports collects every console record the site's members hold
// (admin only), for an offline site's bundle.
func (c *Client) ExportReports(ctx context.Context) (apitypes.ReportExport, error) {
	var out apitypes.ReportExport
	err := c.Do(ctx, http.MethodGet, "/reports/export", nil, &out)
	return out, err
}
