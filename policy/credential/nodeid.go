package credential

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/mr-tron/base58"
)

// A node ID is a libp2p peer ID. For an ed25519 key, the ID is the
// "identity" multihash of the key's protobuf encoding, in base58btc. The
// prefix below is that multihash header (code 0x00, length 36) followed by
// the protobuf header (field 1 = KeyType Ed25519, field 2 = 32 bytes). It is
// decoded here without libp2p so that the admin CLI, which must not link
// libp2p, can check node IDs and their signatures.
var ed25519IDPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// ErrNodeID means a string is not an ed25519 node ID.
var ErrNodeID = errors.New("not an ed25519 node ID")

// NodeKey returns the public key embedded in an ed25519 node ID.
func NodeKey(nodeID string) (ed25519.PublicKey, error) {
	raw, err := nodeIDBytes(nodeID)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(bytes.Clone(raw[len(ed25519IDPrefix):])), nil
}

// NodeIDFromKey returns the node ID of an ed25519 public key, the same
// string libp2p's peer.IDFromPublicKey gives.
func NodeIDFromKey(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("node id: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return base58.Encode(append(bytes.Clone(ed25519IDPrefix), pub...)), nil
}

func nodeIDBytes(nodeID string) ([]byte, error) {
	if len(nodeID) == 0 || len(nodeID) > 64 {
		return nil, fmt.Errorf("%w: %q", ErrNodeID, nodeID)
	}
	raw, err := base58.Decode(nodeID)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNodeID, nodeID, err)
	}
	if len(raw) != len(ed25519IDPrefix)+ed25519.PublicKeySize || !bytes.HasPrefix(raw, ed25519IDPrefix) {
		return nil, fmt.Errorf("%w: %q", ErrNodeID, nodeID)
	}
	return raw, nil
}
