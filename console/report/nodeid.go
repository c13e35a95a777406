package report

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// A libp2p peer ID of an ed25519 key is the base58btc encoding of an
// identity multihash of the key's protobuf encoding:
//
//	0x00 0x24 | 0x08 0x01 (KeyType Ed25519) 0x12 0x20 (Data, 32 bytes) | key
//
// so the public key is recoverable from the ID without linking libp2p
// (the console binary must not). TestNodeIDMatchesLibp2p checks this
// against libp2p itself.
var idPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var b58Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(b58Alphabet); i++ {
		t[b58Alphabet[i]] = int8(i)
	}
	return t
}()

// NodeID is the libp2p peer ID of an ed25519 public key.
func NodeID(pub ed25519.PublicKey) string {
	return b58encode(append(append([]byte{}, idPrefix...), pub...))
}

// PublicKeyFromNodeID recovers the ed25519 key a node ID names.
func PublicKeyFromNodeID(id string) (ed25519.PublicKey, error) {
	if len(id) == 0 || len(id) > 64 {
		return nil, fmt.Errorf("node ID of %d characters", len(id))
	}
	raw, err := b58decode(id)
	if err != nil {
		return nil, fmt.Errorf("node ID %.64q: %w", id, err)
	}
	if len(raw) != len(idPrefix)+ed25519.PublicKeySize || string(raw[:len(idPrefix)]) != string(idPrefix) {
		return nil, fmt.Errorf("node ID %.64q is not an ed25519 peer ID", id)
	}
	// Canonical form only: one key, one ID.
	if NodeID(raw[len(idPrefix):]) != id {
		return nil, fmt.Errorf("node ID %.64q is not in canonical form", id)
	}
	return ed25519.PublicKey(raw[len(idPrefix):]), nil
}

func b58encode(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	digits := make([]byte, 0, len(b)*138/100+1)
	for _, c := range b[zeros:] {
		carry := int(c)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, 0, zeros+len(digits))
	for range zeros {
		out = append(out, '1')
	}
	for i := len(digits) - 1; i >= 0; i-- {
		out = append(out, b58Alphabet[digits[i]])
	}
	return string(out)
}

func b58decode(s string) ([]byte, error) {
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	bytes := make([]byte, 0, len(s))
	for i := zeros; i < len(s); i++ {
		v := b58Index[s[i]]
		if v < 0 {
			return nil, errors.New("not base58")
		}
		carry := int(v)
		for j := range bytes {
			carry += int(bytes[j]) * 58
			bytes[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			bytes = append(bytes, byte(carry))
			carry >>= 8
		}
	}
	out := make([]byte, zeros, zeros+len(bytes))
	for i := len(bytes) - 1; i >= 0; i-- {
		out = append(out, bytes[i])
	}
	return out, nil
}
