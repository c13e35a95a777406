// Package nodekey owns the node's long-lived key: loaded from the state
// directory (refused when other users can read or change it, never
// replaced when unreadable), created on first start, and the node ID
// derived from it (its libp2p peer ID), by which gossip, the payload
// exchange, credentials and the console name the node.
package nodekey

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/platform/secretfile"
)

// File is the name of the node's private key in the state dir.
const File = "node.key"

// Identity is the node's long-lived key and the ID derived from it. The ID
// is the node's libp2p peer ID, so gossip, content exchange and the fleet
// view all name a node the same way.
type Identity struct {
	Key crypto.PrivKey
	ID  peer.ID
}

// LoadOrCreate reads the node key from dir, creating an ed25519 key
// on first start. A key file that exists but cannot be parsed, or that
// other users can read or change, is an error, never replaced: the node ID
// is how the fleet knows this node.
func LoadOrCreate(dir string) (*Identity, error) {
	path := filepath.Join(dir, File)
	raw, err := secretfile.Read(path, "node key")
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("node key %s is unreadable (%v): restore it from a backup, or remove it to give this node a new identity", path, err)
		}
		return identityFrom(k)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	raw, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode node key: %w", err)
	}
	if err := atomicfile.WriteFile(path, raw, 0o600); err != nil {
		return nil, fmt.Errorf("write node key: %w", err)
	}
	return identityFrom(k)
}

func identityFrom(k crypto.PrivKey) (*Identity, error) {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	return &Identity{Key: k, ID: id}, nil
}

// Ed25519 is the node key as a standard library key (console records are
// signed with it).
func (i *Identity) Ed25519() ed25519.PrivateKey {
	raw, err := i.Key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("node key is not ed25519 (%d bytes, %v)", len(raw), err))
	}
	return ed25519.PrivateKey(raw)
}
