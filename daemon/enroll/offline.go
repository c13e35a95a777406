package enroll

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
)

// WriteRequest writes the node's offline enrollment request (no nonce) to
// path, for `patchring ca sign` on the admin's machine.
func WriteRequest(path string, node Node, now time.Time) (*credential.Request, error) {
	req, err := credential.NewRequest(node.ID, node.Hostname, "", now, node.Sign)
	if err != nil {
		return nil, fmt.Errorf("enrollment request: %w", err)
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("enrollment request: %w", err)
	}
	return req, nil
}

// InstallCredential installs a credential (its wire form, as `patchring ca
// sign` writes it) as stateDir/node.credential after checking that it is
// for nodeID and valid at now, and, when tr is not nil, that it verifies in
// the fleet document (verified then reports true). It replaces the file
// atomically.
func InstallCredential(stateDir string, raw []byte, nodeID string, tr *credential.Trust, now time.Time) (c *credential.Credential, verified bool, err error) {
	c, err = credential.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("install credential: %w", err)
	}
	if c.NodeID != nodeID {
		return nil, false, fmt.Errorf("install credential: it is for node %s, this node is %s: %w", c.NodeID, nodeID, credential.ErrWrongNode)
	}
	if tr != nil {
		if err := tr.VerifyFor(c, nodeID, now); err != nil {
			return nil, false, fmt.Errorf("install credential: %w", err)
		}
	} else {
		if !now.Before(c.NotAfter) {
			return nil, false, fmt.Errorf("install credential: %w at %s", credential.ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Add(credential.ClockSkew).Before(c.NotBefore) {
			return nil, false, fmt.Errorf("install credential: %w until %s", credential.ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("install credential: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(stateDir, credential.FileName), raw, 0o600); err != nil {
		return nil, false, fmt.Errorf("install credential: %w", err)
	}
	return c, tr != nil, nil
}
