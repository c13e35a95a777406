package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Key file format. One JSON file per key, named <role>-<keyid>.json.
const (
	keyFileFormat = 1
	keyFileSuffix = ".json"
	retiredDir    = "retired"

	kdfScrypt     = "scrypt"
	cipherBox     = "nacl-secretbox"
	scryptR       = 8
	scryptP       = 1
	scryptSaltLen = 32
)

// scryptN is the scrypt cost for new key files (recorded in each file);
// tests lower it because scrypt is slow under the race detector.
var scryptN = 1 << 15

// Key is one signing key as stored in the keys directory. Private is nil
// until the key has been decrypted (see [ReadKeyFile]).
type Key struct {
	Role    string
	ID      string
	Public  ed25519.PublicKey
	Private ed25519.PrivateKey
	Path    string
	Created time.Time
	// Encrypted reports whether the file holds the private key encrypted
	// with a passphrase.
	Encrypted bool
}

// tufKey returns the key in TUF metadata form.
func (k *Key) tufKey() (*metadata.Key, error) {
	return metadata.KeyFromPublicKey(k.Public)
}

// signer returns a go-tuf compatible signer for the private key.
func (k *Key) signer() (signature.Signer, error) {
	if k.Private == nil {
		return nil, fmt.Errorf("key %s: private key not loaded", k.ID)
	}
	return signature.LoadSigner(k.Private, crypto.Hash(0))
}

type keyFile struct {
	Format    int           `json:"format"`
	Role      string        `json:"role"`
	KeyID     string        `json:"keyid"`
	KeyType   string        `json:"keytype"`
	Scheme    string        `json:"scheme"`
	Public    string        `json:"public"`
	Created   time.Time     `json:"created"`
	Private   string        `json:"private,omitempty"`
	Encrypted *encryptedKey `json:"encrypted,omitempty"`
}

type encryptedKey struct {
	KDF    string `json:"kdf"`
	N      int    `json:"n"`
	R      int    `json:"r"`
	P      int    `json:"p"`
	Salt   []byte `json:"salt"`
	Cipher string `json:"cipher"`
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
}

// generateKey creates a new ed25519 key for role.
func generateKey(role string, now time.Time) (*Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", role, err)
	}
	tk, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", role, err)
	}
	id, err := tk.ID()
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", role, err)
	}
	return &Key{Role: role, ID: id, Public: pub, Private: priv, Created: now.UTC().Truncate(time.Second)}, nil
}

// writeKeyFile stores k in keysDir (0600, refusing to overwrite), encrypted
// when passphrase is not empty.
func writeKeyFile(keysDir string, k *Key, passphrase []byte) error {
	kf := keyFile{
		Format:  keyFileFormat,
		Role:    k.Role,
		KeyID:   k.ID,
		KeyType: metadata.KeyTypeEd25519,
		Scheme:  metadata.KeySchemeEd25519,
		Public:  hex.EncodeToString(k.Public),
		Created: k.Created,
	}
	seed := k.Private.Seed()
	if len(passphrase) == 0 {
		kf.Private = hex.EncodeToString(seed)
	} else {
		enc, err := sealKey(seed, passphrase)
		if err != nil {
			return fmt.Errorf("encrypt %s key %s: %w", k.Role, k.ID, err)
		}
		kf.Encrypted = enc
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(keysDir, k.Role+"-"+k.ID+keyFileSuffix)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	k.Path = path
	k.Encrypted = len(passphrase) > 0
	return atomicfile.SyncDir(keysDir)
}

func sealKey(seed, passphrase []byte) (*encryptedKey, error) {
	salt := make([]byte, scryptSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	var nonce [24]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	dk, err := scrypt.Key(passphrase, salt, scryptN, scryptR, scryptP, 32)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	copy(key[:], dk)
	sealed := secretbox.Seal(nil, seed, &nonce, &key)
	return &encryptedKey{KDF: kdfScrypt, N: scryptN, R: scryptR, P: scryptP, Salt: salt, Cipher: cipherBox, Nonce: nonce[:], Sealed: sealed}, nil
}

func openKey(enc *encryptedKey, passphrase []byte) ([]byte, error) {
	if enc.KDF != kdfScrypt || enc.Cipher != cipherBox {
		return nil, fmt.Errorf("unsupported key encryption %s/%s (want %s/%s)", enc.KDF, enc.Cipher, kdfScrypt, cipherBox)
	}
	if len(enc.Nonce) != 24 {
		return nil, fmt.Errorf("bad nonce length %d", len(enc.Nonce))
	}
	// Bound the scrypt cost a key file can ask for: at most 256 MiB of
	// memory (128*N*r bytes) and a modest parallelism.
	if enc.N < 2 || enc.N > 1<<18 || enc.N&(enc.N-1) != 0 || enc.R < 1 || enc.R > 32 || enc.N*enc.R > 1<<21 || enc.P < 1 || enc.P > 16 {
		return nil, fmt.Errorf("scrypt parameters out of range (n=%d r=%d p=%d)", enc.N, enc.R, enc.P)
	}
	if len(passphrase) == 0 {
		return nil, ErrPassphraseRequired
	}
	dk, err := scrypt.Key(passphrase, enc.Salt, enc.N, enc.R, enc.P, 32)
	if err != nil {
		return nil, err
	}
	var key [32]byte
	copy(key[:], dk)
	var nonce [24]byte
	copy(nonce[:], enc.Nonce)
	seed, ok := secretbox.Open(nil, enc.Sealed, &nonce, &key)
	if !ok {
		return nil, ErrBadPassphrase
	}
	return seed, nil
}

// ReadKeyFile reads one key file. With decrypt set it also loads the private
// key, decrypting it with passphrase when the file is encrypted; errors then
// wrap [ErrPassphraseRequired] or [ErrBadPassphrase].
func ReadKeyFile(path string, passphrase []byte, decrypt bool) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if kf.Format != keyFileFormat {
		return nil, fmt.Errorf("read key %s: unsupported format %d (want %d)", path, kf.Format, keyFileFormat)
	}
	if kf.KeyType != metadata.KeyTypeEd25519 || kf.Scheme != metadata.KeySchemeEd25519 {
		return nil, fmt.Errorf("read key %s: key type %s/%s: only ed25519 is supported", path, kf.KeyType, kf.Scheme)
	}
	if !slices.Contains(topRoles, kf.Role) && !slices.Contains(fleetRoles, kf.Role) && kf.Role != RoleFleetStatus {
		return nil, fmt.Errorf("read key %s: unknown role %q", path, kf.Role)
	}
	pub, err := hex.DecodeString(kf.Public)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("read key %s: bad public key", path)
	}
	k := &Key{Role: kf.Role, ID: kf.KeyID, Public: pub, Path: path, Created: kf.Created, Encrypted: kf.Encrypted != nil}
	tk, err := k.tufKey()
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if id, err := tk.ID(); err != nil || id != kf.KeyID {
		return nil, fmt.Errorf("read key %s: key id %s does not match its public key", path, kf.KeyID)
	}
	if !decrypt {
		return k, nil
	}
	var seed []byte
	switch {
	case kf.Encrypted != nil:
		seed, err = openKey(kf.Encrypted, passphrase)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", path, err)
		}
	case kf.Private != "":
		seed, err = hex.DecodeString(kf.Private)
		if err != nil {
			return nil, fmt.Errorf("read key %s: bad private key encoding", path)
		}
	default:
		return nil, fmt.Errorf("read key %s: no private key in file", path)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("read key %s: private key has %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(k.Public) {
		return nil, fmt.Errorf("read key %s: private key does not match public key", path)
	}
	k.Private = priv
	return k, nil
}

// ensureKeysDir creates keysDir with mode 0700, or checks that an existing
// one is private to its owner.
func ensureKeysDir(keysDir string) error {
	fi, err := os.Stat(keysDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(keysDir, 0o700); err != nil {
			return fmt.Errorf("create keys dir: %w", err)
		}
		return os.Chmod(keysDir, 0o700)
	case err != nil:
		return fmt.Errorf("keys dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("keys dir %s is not a directory", keysDir)
	}
	return checkPrivate(keysDir, fi)
}

// scanKeys lists the public half of every key file in keysDir (not in
// retired/). A missing keysDir yields no keys.
func scanKeys(keysDir string) (map[string]*Key, error) {
	keys := map[string]*Key{}
	if keysDir == "" {
		return keys, nil
	}
	fi, err := os.Stat(keysDir)
	if errors.Is(err, fs.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys dir: %w", err)
	}
	if err := checkPrivate(keysDir, fi); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		return nil, fmt.Errorf("keys dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), keyFileSuffix) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		k, err := ReadKeyFile(filepath.Join(keysDir, e.Name()), nil, false)
		if err != nil {
			return nil, err
		}
		keys[k.ID] = k
	}
	return keys, nil
}

// retireKey moves a key file to keysDir/retired/, keeping it for audit but
// out of use.
func retireKey(keysDir string, k *Key) error {
	if k.Path == "" {
		return nil
	}
	dst := filepath.Join(keysDir, retiredDir)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("retire key %s: %w", k.ID, err)
	}
	if err := os.Rename(k.Path, filepath.Join(dst, filepath.Base(k.Path))); err != nil {
		return fmt.Errorf("retire key %s: %w", k.ID, err)
	}
	return atomicfile.SyncDir(keysDir)
}
