package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Updates returns every applicable update with the policy's decision.
func (c *Client) Updates(ctx context.Context) (apitypes.Updates, error) {
	var u apitypes.Updates
	err := c.Do(ctx, http.MethodGet, "/updates", nil, &u)
	return u, err
}

// History returns the newest limit transactions (all when limit is 0).
func (c *Client) History(ctx context.Context, limit int) ([]apitypes.Transaction, error) {
	var txs []apitypes.Transaction
	err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/history?limit=%d", limit), nil, &txs)
	return txs, err
}

// Install installs an applicable update now (admin).
func (c *Client) Install(ctx context.Context, pkg, version string) (apitypes.Transaction, error) {
	var tx apitypes.Transaction
	err := c.Do(ctx, http.MethodPost, "/install", apitypes.InstallRequest{Package: pkg, Version: version}, &tx)
	return tx, err
}

// Rollback rolls transaction id back (admin).
func (c *Client) Rollback(ctx context.Context, id uint64, reason string) (apitypes.Transaction, error) {
	var tx apitypes.Transaction
	err := c.Do(ctx, http.MethodPost, "/rollback", apitypes.RollbackRequest{ID: id, Reason: reason}, &tx)
	return tx, err
}
