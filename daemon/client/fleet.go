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

// FleetKeys lists the gossip key fingerprints of this node and its site.
func (c *Client) FleetKeys(ctx context.Context) (apitypes.FleetKeys, error) {
	var k apitypes.FleetKeys
	err := c.Do(ctx, http.MethodGet, "/fleet/keys", nil, &k)
	return k, err
}

// ChangeKey installs, uses or removes a gossip key on this node (admin).
func (c *Client) ChangeKey(ctx context.Context, op, keyBase64 string) (apitypes.FleetKeys, error) {
	var k apitypes.FleetKeys
	err := c.Do(ctx, http.MethodPost, "/fleet/keys", apitypes.KeyRequest{Op: op, Key: keyBase64}, &k)
	return k, err
}

// Unmanaged lists the devices on this node's site that run no agent.
func (c *Client) Unmanaged(ctx context.Context) (apitypes.Unmanaged, error) {
	var u apitypes.Unmanaged
	err := c.Do(ctx, http.MethodGet, "/fleet/unmanaged", nil, &u)
	return u, err
}
