package client

import (
	"context"
	"net/http"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Fleet returns the members of this node's site as gossip describes them.
func (c *Client) Fleet(ctx context.Context) (apitypes.Fleet, error) {
	var f apitypes.Fleet
	err := c.Do(ctx, http.MethodGet, "/fleet", nil, &f)
	return f, err
}

// Peers returns this node's payload traffic with its peers.
func (c *Client) Peers(ctx context.Context) (apitypes.Peers, error) {
	var p apitypes.Peers
	err := c.Do(ctx, http.MethodGet, "/peers", nil, &p)
	return p, err
}
