package membership

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/p2p/gossip"
)

// keyring keeps the gossip keys of this node in the key file, so a
// rotation survives a restart. Keys never travel over gossip: members only
// announce fingerprints.
type keyring struct {
	mu   sync.Mutex
	path string
	keys [][]byte // primary first
}

func (k *keyring) save() error {
	var b strings.Builder
	b.WriteString("# patchring gossip keyring: one base64 key per line, the primary first\n")
	for _, key := range k.keys {
		b.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	}
	return atomicfile.WriteFile(k.path, []byte(b.String()), 0o600)
}

// ChangeFleetKey installs, uses or removes a gossip key (POST
// /fleet/keys) and returns the keyring as FleetKeys shows it.
func (f *Membership) ChangeFleetKey(ctx context.Context, req apitypes.KeyRequest) (apitypes.FleetKeys, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(req.Key))
	if err != nil {
		return apitypes.FleetKeys{}, apicall.BadRequest("key is not base64: %v", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return apitypes.FleetKeys{}, apicall.BadRequest("a gossip key has 16, 24 or 32 bytes, this one %d", n)
	}
	if err := f.changeKey(req.Op, key); err != nil {
		return apitypes.FleetKeys{}, apicall.Conflict("%v", err)
	}
	return f.FleetKeys(ctx), nil
}

func (f *Membership) changeKey(op string, key []byte) error {
	kr, g := f.kr, f.g
	kr.mu.Lock()
	defer kr.mu.Unlock()
	has := slices.IndexFunc(kr.keys, func(k []byte) bool { return string(k) == string(key) })
	switch op {
	case "install":
		if err := g.InstallKey(key); err != nil {
			return err
		}
		if has < 0 {
			kr.keys = append(kr.keys, key)
		}
	case "use":
		if has < 0 {
			return fmt.Errorf("use gossip key %s: install it first", gossip.KeyFingerprint(key))
		}
		if err := g.UseKey(key); err != nil {
			return err
		}
		kr.keys = append([][]byte{key}, slices.Delete(kr.keys, has, has+1)...)
	case "remove":
		if has == 0 {
			return fmt.Errorf("remove gossip key %s: it is the primary key; use another key first", gossip.KeyFingerprint(key))
		}
		if err := g.RemoveKey(key); err != nil {
			return err
		}
		if has > 0 {
			kr.keys = slices.Delete(kr.keys, has, has+1)
		}
	default:
		return fmt.Errorf("key operation %q: use install, use or remove", op)
	}
	if err := kr.save(); err != nil {
		return fmt.Errorf("save keyring %s: %w", kr.path, err)
	}
	f.log.Info("fleet: gossip keyring changed", "op", op, "key", gossip.KeyFingerprint(key))
	return nil
}

// FleetKeys lists the key fingerprints of this node and of every member
// (GET /fleet/keys).
func (f *Membership) FleetKeys(ctx context.Context) apitypes.FleetKeys {
	own := f.g.Keyring()
	out := apitypes.FleetKeys{Primary: own.Primary, Installed: own.Installed}
	for _, m := range f.g.Members() {
		out.Members = append(out.Members, apitypes.MemberKeys{
			NodeID: m.NodeID, Hostname: m.Hostname, Liveness: m.Liveness.String(), Local: m.Local,
			Primary: m.Keyring.Primary, Installed: m.Keyring.Installed,
		})
	}
	return out
}
