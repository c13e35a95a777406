package apttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Signer is an OpenPGP signing key in its own gpg home directory, made
// with the real gpg, as an archive's release key. Close stops the gpg-agent
// gpg started for it and removes the directory.
type Signer struct {
	home string
	// Keyring is the public key exported in binary form: the file a
	// sources entry's Signed-By names.
	Keyring string
}

// NewSigner makes a new ed25519 signing key with gpg (package gnupg).
func NewSigner() (*Signer, error) {
	if _, err := exec.LookPath("gpg"); err != nil {
		return nil, fmt.Errorf("new signer: gpg not found in PATH (Debian package gnupg): %w", err)
	}
	// gpg-agent's socket path must stay short: a short directory in /tmp.
	dir, err := os.MkdirTemp("/tmp", "apttest-gpg-")
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	s := &Signer{home: filepath.Join(dir, "h"), Keyring: filepath.Join(dir, "key.gpg")}
	if err := os.Mkdir(s.home, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new signer: %w", err)
	}
	if _, err := s.gpg("--passphrase", "", "--quick-gen-key", "patchring test archive <archive@patchring.invalid>", "ed25519", "sign", "0"); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("new signer: %w", err)
	}
	pub, err := s.gpg("--export")
	if err == nil {
		err = os.WriteFile(s.Keyring, pub, 0o644)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return s, nil
}

// MustSigner is NewSigner for tests.
func MustSigner(t TB) *Signer {
	t.Helper()
	s, err := NewSigner()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (s *Signer) gpg(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpg", append([]string{"--homedir", s.home, "--batch", "--yes", "--pinentry-mode", "loopback", "--no-tty"}, args...)...)
	cmd.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH"), "GNUPGHOME=" + s.home}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg %v: %w: %s", args, err, errb.String())
	}
	return out.Bytes(), nil
}

// ClearSign returns data clear-signed (an InRelease file).
func (s *Signer) ClearSign(data []byte) ([]byte, error) { return s.sign("--clearsign", data) }

// DetachSign returns an armoured detached signature of data (Release.gpg).
func (s *Signer) DetachSign(data []byte) ([]byte, error) {
	return s.sign("--detach-sign", data)
}

func (s *Signer) sign(mode string, data []byte) ([]byte, error) {
	in, err := os.CreateTemp(filepath.Dir(s.home), "in-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(in.Name())
	if _, err := in.Write(data); err != nil {
		in.Close()
		return nil, err
	}
	in.Close()
	return s.gpg("--digest-algo", "SHA256", "--armor", "--output", "-", mode, in.Name())
}

// Close stops the gpg-agent of the key's home directory (started by gpg
// for this key only) and removes the key.
func (s *Signer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpgconf", "--homedir", s.home, "--kill", "gpg-agent")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GNUPGHOME=" + s.home}
	_ = cmd.Run()
	return os.RemoveAll(filepath.Dir(s.home))
}
