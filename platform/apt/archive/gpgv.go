package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrBadSignature is wrapped when gpgv does not accept a signature with
// one of the source's keys.
var ErrBadSignature = errors.New("signature not verified")

// Keyring is a set of OpenPGP public keys: binary or armoured files, and
// optionally the fingerprints one of which must have made the signature.
type Keyring struct {
	Files        []string // binary (.gpg) or armoured (.asc) keyring files
	Inline       []string // armoured key blocks (deb822 Signed-By)
	Fingerprints []string // upper-case hex; empty: any key in Files
}

// Verifier runs gpgv.
type Verifier struct {
	// GPGV is the gpgv binary; default "gpgv" from PATH.
	GPGV string
}

const clearsignHeader = "-----BEGIN PGP SIGNED MESSAGE-----"

// VerifyInRelease checks a clear-signed InRelease file with gpgv against
// kr and returns the signed text (what apt reads), never the unsigned
// parts. A file with more than one signed message, or text before or
// after it, is refused as apt refuses it.
func (v Verifier) VerifyInRelease(ctx context.Context, kr Keyring, data []byte) ([]byte, error) {
	if len(data) > MaxReleaseSize {
		return nil, fmt.Errorf("verify InRelease: %w: %d bytes", ErrMalformed, len(data))
	}
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte(clearsignHeader+"\n")) || bytes.Count(trimmed, []byte(clearsignHeader)) != 1 ||
		!bytes.HasSuffix(trimmed, []byte("-----END PGP SIGNATURE-----")) || bytes.Count(trimmed, []byte("-----BEGIN PGP SIGNATURE-----")) != 1 {
		return nil, fmt.Errorf("verify InRelease: %w: not exactly one clear-signed message", ErrBadSignature)
	}
	dir, err := os.MkdirTemp("", "patchring-gpgv-")
	if err != nil {
		return nil, fmt.Errorf("verify InRelease: %w", err)
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "InRelease")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return nil, fmt.Errorf("verify InRelease: %w", err)
	}
	out := filepath.Join(dir, "out")
	if err := v.run(ctx, dir, kr, "--output", out, in); err != nil {
		return nil, fmt.Errorf("verify InRelease: %w", err)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("verify InRelease: %w", err)
	}
	return text, nil
}

// VerifyDetached checks Release against its detached signature
// Release.gpg.
func (v Verifier) VerifyDetached(ctx context.Context, kr Keyring, data, sig []byte) error {
	dir, err := os.MkdirTemp("", "patchring-gpgv-")
	if err != nil {
		return fmt.Errorf("verify Release: %w", err)
	}
	defer os.RemoveAll(dir)
	d, s := filepath.Join(dir, "Release"), filepath.Join(dir, "Release.gpg")
	if err := os.WriteFile(d, data, 0o600); err != nil {
		return fmt.Errorf("verify Release: %w", err)
	}
	if err := os.WriteFile(s, sig, 0o600); err != nil {
		return fmt.Errorf("verify Release: %w", err)
	}
	if err := v.run(ctx, dir, kr, s, d); err != nil {
		return fmt.Errorf("verify Release: %w", err)
	}
	return nil
}

// run runs gpgv in an empty home directory with only kr's keys.
func (v Verifier) run(ctx context.Context, dir string, kr Keyring, args ...string) error {
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	full := []string{"--homedir", home, "--status-fd", "1"}
	n := 0
	add := func(bin []byte) error {
		n++
		p := filepath.Join(dir, fmt.Sprintf("key%d.gpg", n))
		if err := os.WriteFile(p, bin, 0o600); err != nil {
			return err
		}
		full = append(full, "--keyring", p)
		return nil
	}
	for _, f := range kr.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("keyring: %w", err)
		}
		if bytes.Contains(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			if data, err = Dearmor(data); err != nil {
				return fmt.Errorf("keyring %s: %w", f, err)
			}
		}
		if err := add(data); err != nil {
			return err
		}
	}
	for _, block := range kr.Inline {
		data, err := Dearmor([]byte(block))
		if err != nil {
			return fmt.Errorf("inline Signed-By key: %w", err)
		}
		if err := add(data); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: no keyring for this source", ErrBadSignature)
	}
	bin := v.GPGV
	if bin == "" {
		bin = "gpgv"
	}
	cmd := exec.CommandContext(ctx, bin, append(full, args...)...)
	cmd.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if errors.Is(runErr, exec.ErrNotFound) {
		return fmt.Errorf("gpgv not found (Debian package gpgv): %w", runErr)
	}
	good, fprs, bad := parseStatus(stdout.String())
	if runErr != nil || !good || bad != "" {
		msg := strings.TrimSpace(stderr.String())
		if bad != "" {
			msg = bad + ": " + msg
		}
		return fmt.Errorf("%w: %s", ErrBadSignature, msg)
	}
	if len(kr.Fingerprints) > 0 {
		for _, want := range kr.Fingerprints {
			for _, got := range fprs {
				if strings.EqualFold(strings.TrimSuffix(want, "!"), got) {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: signed by %v, not by %v (Signed-By)", ErrBadSignature, fprs, kr.Fingerprints)
	}
	return nil
}

// parseStatus reads gpgv's --status-fd lines: whether a good signature was
// seen, the VALIDSIG fingerprints (signing key and primary key), and the
// first status that makes apt refuse a file.
func parseStatus(s string) (good bool, fprs []string, bad string) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "[GNUPG:]" {
			continue
		}
		switch f[1] {
		case "GOODSIG":
			good = true
		case "VALIDSIG":
			if len(f) > 2 {
				fprs = append(fprs, f[2])
			}
			if len(f) > 11 {
				fprs = append(fprs, f[11])
			}
		case "BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "EXPSIG":
			if bad == "" {
				bad = f[1]
			}
		}
	}
	return good, fprs, bad
}

// Dearmor turns an ASCII-armoured OpenPGP block into its binary form, as
// apt does for .asc keyrings before handing them to gpgv.
func Dearmor(data []byte) ([]byte, error) {
	var body strings.Builder
	state := 0 // 0 before BEGIN, 1 headers, 2 body
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []byte
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "-----BEGIN PGP"):
			state = 1
			body.Reset()
		case strings.HasPrefix(line, "-----END PGP"):
			if state != 2 {
				return nil, fmt.Errorf("dearmor: %w: empty armour block", ErrMalformed)
			}
			b, err := base64.StdEncoding.DecodeString(body.String())
			if err != nil {
				return nil, fmt.Errorf("dearmor: %w: %w", ErrMalformed, err)
			}
			out = append(out, b...)
			state = 0
		case state == 1:
			if line == "" {
				state = 2
			}
		case state == 2:
			if strings.HasPrefix(line, "=") && len(line) == 5 { // CRC-24 checksum
				continue
			}
			body.WriteString(line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dearmor: %w: no armoured block", ErrMalformed)
	}
	return out, nil
}
