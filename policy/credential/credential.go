package credential

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mr-tron/base58"
)

// Field limits. A credential at its limits stays under MaxSize, which
// leaves room in memberlist's 512-byte node metadata for the rest.
const (
	MaxHostname = 64
	MaxSite     = 32
	MaxTag      = 32
	MaxTags     = 8
	// MaxSize bounds the whole wire form; the tags share what the other
	// fields leave (about 160 bytes).
	MaxSize = 384

	formatVersion = 1
	signerIDLen   = 8
)

// signPrefix separates credential signatures from every other use of the
// same keys.
const signPrefix = "patchring node credential v1\x00"

// ErrMalformed means bytes do not decode as a credential.
var ErrMalformed = errors.New("malformed credential")

// SignerID names a signing key in 8 bytes: the start of SHA-256 over the
// public key.
type SignerID [signerIDLen]byte

// SignerIDOf returns the SignerID of pub.
func SignerIDOf(pub ed25519.PublicKey) SignerID {
	sum := sha256.Sum256(pub)
	var id SignerID
	copy(id[:], sum[:])
	return id
}

func (s SignerID) String() string { return fmt.Sprintf("%x", s[:]) }

// Credential is what the fleet's authority says about one node.
type Credential struct {
	NodeID    string // libp2p peer ID (ed25519)
	Hostname  string
	Site      string
	Tags      []string
	Serial    uint64
	NotBefore time.Time
	NotAfter  time.Time
	Signer    SignerID
	Signature []byte
}

// Validate checks the fields' shape (not the signature).
func (c *Credential) Validate() error {
	if _, err := nodeIDBytes(c.NodeID); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	if err := checkText("hostname", c.Hostname, MaxHostname, true); err != nil {
		return err
	}
	if err := checkText("site", c.Site, MaxSite, false); err != nil {
		return err
	}
	if len(c.Tags) > MaxTags {
		return fmt.Errorf("credential: %d tags, at most %d", len(c.Tags), MaxTags)
	}
	for _, t := range c.Tags {
		if err := checkText("tag", t, MaxTag, false); err != nil {
			return err
		}
	}
	if n := c.size(); n > MaxSize {
		return fmt.Errorf("credential: %d bytes encoded, at most %d (fewer or shorter tags)", n, MaxSize)
	}
	if c.Serial == 0 {
		return errors.New("credential: serial is 0")
	}
	if c.NotBefore.IsZero() || c.NotAfter.IsZero() || !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("credential: validity %s..%s is empty", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if c.NotBefore.Unix() < 0 {
		return errors.New("credential: validity starts before 1970")
	}
	return nil
}

// size is the encoded length, with varints at their largest.
func (c *Credential) size() int {
	n := 1 + 1 + 38 + 1 + len(c.Hostname) + 1 + len(c.Site) + 1 + 3*binary.MaxVarintLen64 + signerIDLen + ed25519.SignatureSize
	for _, t := range c.Tags {
		n += 1 + len(t)
	}
	return n
}

// checkText allows printable UTF-8 without spaces or commas (tags and
// sites are used in selectors and CSV).
func checkText(what, s string, max int, mayBeEmpty bool) error {
	if s == "" {
		if mayBeEmpty {
			return nil
		}
		return fmt.Errorf("credential: %s is empty", what)
	}
	if len(s) > max {
		return fmt.Errorf("credential: %s %q is longer than %d bytes", what, s, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("credential: %s is not UTF-8", what)
	}
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f }) >= 0 {
		return fmt.Errorf("credential: %s %q has a space, comma or control character", what, s)
	}
	return nil
}

// body encodes everything the signature covers.
func (c *Credential) body() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	node, _ := nodeIDBytes(c.NodeID) // checked by Validate
	b := make([]byte, 0, MaxSize)
	b = append(b, formatVersion)
	b = appendBytes(b, node)
	b = appendBytes(b, []byte(c.Hostname))
	b = appendBytes(b, []byte(c.Site))
	b = binary.AppendUvarint(b, uint64(len(c.Tags)))
	for _, t := range c.Tags {
		b = appendBytes(b, []byte(t))
	}
	b = binary.AppendUvarint(b, c.Serial)
	b = binary.AppendUvarint(b, uint64(c.NotBefore.Unix()))
	b = binary.AppendUvarint(b, uint64(c.NotAfter.Unix()))
	b = append(b, c.Signer[:]...)
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func signedMessage(body []byte) []byte {
	return append([]byte(signPrefix), body...)
}

// Sign fills in Signer and Signature with key. Times are kept to the
// second, as encoded.
func (c *Credential) Sign(key ed25519.PrivateKey) error {
	c.NotBefore = c.NotBefore.Truncate(time.Second)
	c.NotAfter = c.NotAfter.Truncate(time.Second)
	c.Signer = SignerIDOf(key.Public().(ed25519.PublicKey))
	body, err := c.body()
	if err != nil {
		return err
	}
	c.Signature = ed25519.Sign(key, signedMessage(body))
	return nil
}

// Marshal returns the credential's wire form. It must have been signed.
func (c *Credential) Marshal() ([]byte, error) {
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, errors.New("credential: not signed")
	}
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	out := append(body, c.Signature...)
	if len(out) > MaxSize {
		return nil, fmt.Errorf("credential: %d bytes, at most %d", len(out), MaxSize)
	}
	return out, nil
}

// String is the credential in one line, for logs and the CLI.
func (c *Credential) String() string {
	return fmt.Sprintf("node %s host %q site %q tags [%s] serial %d valid %s..%s signer %s",
		c.NodeID, c.Hostname, c.Site, strings.Join(c.Tags, ","), c.Serial,
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), c.Signer)
}

// Parse decodes a credential's wire form. It checks the form and the
// fields' shape, not the signature: see [Trust.Verify].
func Parse(b []byte) (*Credential, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxSize)
	}
	d := decoder{b: b}
	if v := d.byte(); v != formatVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	c := &Credential{}
	node := d.bytes(64)
	c.Hostname = string(d.bytes(MaxHostname))
	c.Site = string(d.bytes(MaxSite))
	n := d.uvarint()
	if n > MaxTags {
		return nil, fmt.Errorf("%w: %d tags", ErrMalformed, n)
	}
	for range n {
		c.Tags = append(c.Tags, string(d.bytes(MaxTag)))
	}
	c.Serial = d.uvarint()
	nb, na := d.uvarint(), d.uvarint()
	copy(c.Signer[:], d.fixed(signerIDLen))
	c.Signature = slices.Clone(d.fixed(ed25519.SignatureSize))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	const maxUnix = 1 << 40 // far beyond any real date, keeps time.Unix sane
	if nb > maxUnix || na > maxUnix {
		return nil, fmt.Errorf("%w: validity out of range", ErrMalformed)
	}
	c.NodeID = base58.Encode(node)
	c.NotBefore = time.Unix(int64(nb), 0).UTC()
	c.NotAfter = time.Unix(int64(na), 0).UTC()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return c, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("version")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail("field")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(n int) []byte {
	if len(d.b) < n {
		d.fail("signature")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
