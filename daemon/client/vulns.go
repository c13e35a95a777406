package client

import (
	"context"
	"net/http"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Vulns returns the node's vulnerability exposure.
func (c *Client) Vulns(ctx context.Context) (apitypes.Vulns, error) {
	var v apitypes.Vulns
	err := c.Do(ctx, http.MethodGet, "/vulns", nil, &v)
	return v, err
}
