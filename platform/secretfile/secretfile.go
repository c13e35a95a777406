// Package secretfile reads and writes files that hold secrets (the gossip
// keyring, the node key): it refuses a file other users can read or
// change, saying which file, its mode and how to fix it, and writes new
// ones readable by their owner only.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrExposed is wrapped by the error of a secret file other users can
// read or change.
var ErrExposed = errors.New("secret file accessible by other users")

// maxSize bounds what Read reads: secret files are small.
const maxSize = 1 << 20

// Read checks the file at path with Check and returns its contents; what
// names the file for the messages ("gossip key file").
func Read(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if err := check(path, what, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("read %s %s: larger than %d bytes; is it the right file?", what, path, maxSize)
	}
	return data, nil
}

// Check refuses the file at path when users other than its owner may read
// or change it, or when it belongs to another user than root or the
// caller; what names the file for the messages.
func Check(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", what, err)
	}
	return check(path, what, fi)
}

// Create writes data to a new file at path, readable and writable by its
// owner only; it refuses to replace an existing file.
func Create(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// The umask only takes bits away, but the file may sit on a file
	// system that ignores the mode: say so rather than leave it open.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create %s: %w", path, err)
	}
	return Check(path, "new file")
}
