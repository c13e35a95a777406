package trust

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/patchring/patchring/internal/atomicfile"
)

// rootsDir holds, below the state directory, every root version a refresh
// fetched and verified (N.root.json), so the node can serve the chain to
// peers that are still on an older root.
const rootsDir = "roots"

// rootFileVersion parses "N.root.json".
func rootFileVersion(name string) (int64, bool) {
	n, ok := strings.CutSuffix(name, ".root.json")
	if !ok || n == "" || n[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil && v > 0
}

// keepRoots stores the roots a successful refresh fetched (all verified by
// go-tuf, each against the one before) up to the verified root version.
// Failing to store one is logged, not fatal: it only means the node cannot
// serve that version to peers.
func (c *Client) keepRoots(roots map[int64][]byte, upTo int64) {
	if len(roots) == 0 {
		return
	}
	dir := filepath.Join(c.cfg.StateDir, rootsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.log.Warn("cannot keep verified roots", "err", err)
		return
	}
	for v, data := range roots {
		if v > upTo {
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.root.json", v)), data, 0o600); err != nil {
			c.log.Warn("cannot keep verified root", "version", v, "err", err)
		}
	}
}

// VerifiedFile returns the exact bytes of a repository file this client
// has verified, by its path relative to the repository root as sources
// serve it, so that the node can pass them on to peers (who verify them
// again from their own root of trust). It knows:
//
//   - metadata/N.root.json: every root version it verified (from the
//     installed one up), and metadata/root.json: the current one;
//   - metadata/timestamp.json;
//   - metadata/snapshot.json and metadata/N.snapshot.json, for the verified
//     version N; the same for targets;
//   - the policy target: targets/policy.json, and its consistent-snapshot
//     name targets/<hash>.policy.json; the same for the fleet document
//     (fleet.json).
//
// Everything except older roots comes from the last verified state, so
// the files always belong together. ok is false for anything else,
// including versions it no longer holds. It reads no network.
func (c *Client) VerifiedFile(path string) (data []byte, ok bool) {
	dir, name, found := strings.Cut(path, "/")
	if !found || strings.Contains(name, "/") || name == "" {
		return nil, false
	}
	st, err := c.lastGood()
	if err != nil {
		st = nil
	}
	switch dir {
	case "metadata":
		return c.verifiedMetadata(st, name)
	case "targets":
		if st == nil {
			return nil, false
		}
		for _, t := range []struct {
			info *TargetInfo
			data []byte
		}{{st.PolicyTarget, st.raw.Policy}, {st.FleetTarget, st.raw.Fleet}, {st.FleetStatusTarget, st.raw.Status}} {
			if t.info == nil {
				continue
			}
			if name == t.info.Name {
				return t.data, true
			}
			if h, base, ok := strings.Cut(name, "."); ok && base == t.info.Name {
				for _, want := range t.info.Hashes {
					if h == want {
						return t.data, true
					}
				}
			}
		}
	}
	return nil, false
}

func (c *Client) verifiedMetadata(st *State, name string) ([]byte, bool) {
	if v, ok := rootFileVersion(name); ok {
		if st != nil && v == st.Versions.Root {
			return st.raw.Root, true
		}
		if v == c.rootVer {
			return c.cfg.TrustedRoot, true
		}
		if st != nil && v > st.Versions.Root {
			return nil, false
		}
		data, err := os.ReadFile(filepath.Join(c.cfg.StateDir, rootsDir, name))
		if err != nil || !rootHasVersion(data, v) {
			return nil, false
		}
		return data, true
	}
	if st == nil {
		return nil, false
	}
	role, version := name, int64(0)
	if n, r, ok := strings.Cut(name, "."); ok && r != "json" {
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil || v <= 0 || n[0] == '0' {
			return nil, false
		}
		role, version = r, v
	}
	switch {
	case role == "root.json" && version == 0:
		return st.raw.Root, true
	case role == "timestamp.json" && version == 0:
		return st.raw.Timestamp, true
	case role == "snapshot.json" && (version == 0 || version == st.Versions.Snapshot):
		return st.raw.Snapshot, true
	case role == "targets.json" && (version == 0 || version == st.Versions.Targets):
		return st.raw.Targets, true
	case role == FleetStatusRole+".json" && st.raw.StatusMeta != nil && (version == 0 || version == st.FleetStatusVersion):
		return st.raw.StatusMeta, true
	}
	return nil, false
}

// rootHasVersion checks that a stored root file says it is version v (a
// guard against a damaged or misnamed file; peers verify it anyway).
func rootHasVersion(data []byte, v int64) bool {
	var r struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int64  `json:"version"`
		} `json:"signed"`
	}
	return json.Unmarshal(data, &r) == nil && r.Signed.Type == "root" && r.Signed.Version == v
}

// RootVersion returns the version of the newest root this client trusts:
// the last verified state's, or the installed root's when there is none.
func (c *Client) RootVersion() int64 {
	if st, err := c.lastGood(); err == nil && st.Versions.Root > c.rootVer {
		return st.Versions.Root
	}
	return c.rootVer
}
