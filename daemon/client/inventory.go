package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Inventory returns the latest inventory snapshot as JSON (its schema is
// documented in docs/inventory.md).
func (c *Client) Inventory(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.Do(ctx, http.MethodGet, "/inventory", nil, &raw)
	return raw, err
}

// Rescan takes a fresh inventory now (admin) and returns it.
func (c *Client) Rescan(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.Do(ctx, http.MethodPost, "/inventory/scan", nil, &raw)
	return raw, err
}

// InventoryHistory returns the newest limit change records as JSON.
func (c *Client) InventoryHistory(ctx context.Context, limit int) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/inventory/history?limit=%d", limit), nil, &raw)
	return raw, err
}
