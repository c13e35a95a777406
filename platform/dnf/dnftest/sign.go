package dnftest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Signer is an OpenPGP signing key in its own gpg home, made with the real
// gpg: a repository's and its packages' key. Close stops the gpg-agent gpg
// started for it and removes the directory.
type Signer struct {
	dir, home string
	// KeyFile is the armoured public key: a repository's gpgkey.
	KeyFile     string
	Fingerprint string
}

// NewSigner makes a new ed25519 signing key with gpg.
func NewSigner() (*Signer, error) {
	if _, err := exec.LookPath("gpg"); err != nil {
		return nil, fmt.Errorf("new signer: gpg not found in PATH (Debian package gnupg): %w", err)
	}
	// gpg-agent's socket path must stay short: a short directory in /tmp.
	dir, err := os.MkdirTemp("/tmp", "dnftest-gpg-")
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	s := &Signer{dir: dir, home: filepath.Join(dir, "h"), KeyFile: filepath.Join(dir, "RPM-GPG-KEY-patchring-test")}
	if err := os.Mkdir(s.home, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new signer: %w", err)
	}
	fail := func(err error) (*Signer, error) {
		_ = s.Close()
		return nil, fmt.Errorf("new signer: %w", err)
	}
	if _, err := s.gpg("--passphrase", "", "--quick-gen-key", "patchring test repository <repo@patchring.invalid>", "ed25519", "sign", "0"); err != nil {
		return fail(err)
	}
	pub, err := s.gpg("--armor", "--export")
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(s.KeyFile, pub, 0o644); err != nil {
		return fail(err)
	}
	out, err := s.gpg("--list-keys", "--with-colons")
	if err != nil {
		return fail(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			s.Fingerprint = f[9]
			break
		}
	}
	if s.Fingerprint == "" {
		return fail(fmt.Errorf("no fingerprint in gpg --list-keys: %s", out))
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

func (s *Signer) env() []string {
	return []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH"), "GNUPGHOME=" + s.home, "HOME=" + s.dir}
}

func (s *Signer) gpg(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpg", append([]string{"--homedir", s.home, "--batch", "--yes", "--pinentry-mode", "loopback", "--no-tty"}, args...)...)
	cmd.Env = s.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg %v: %w: %s", args, err, errb.String())
	}
	return out.Bytes(), nil
}

// DetachSign writes an armoured detached signature of file to file+".asc"
// (repomd.xml.asc).
func (s *Signer) DetachSign(file string) error {
	_, err := s.gpg("--armor", "--detach-sign", "--output", file+".asc", file)
	return err
}

// SignRPMs adds the key's signature to each package with rpmsign.
func (s *Signer) SignRPMs(ctx context.Context, paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		return fmt.Errorf("sign rpms: %w", err)
	}
	args := []string{
		"--define", "__gpg " + gpg,
		"--define", "_gpg_name " + s.Fingerprint,
		"--define", "_gpg_path " + s.home,
		"--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
		"--addsign",
	}
	cmd := exec.CommandContext(ctx, "rpmsign", append(args, paths...)...)
	cmd.Env = s.env()
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rpmsign %v: %w: %s", paths, err, errb.String())
	}
	return nil
}

// Close stops the key's gpg-agent and removes its directory.
func (s *Signer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpgconf", "--homedir", s.home, "--kill", "gpg-agent")
	cmd.Env = s.env()
	_ = cmd.Run()
	return os.RemoveAll(s.dir)
}
