package enroll

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
)

// StateFile is the enrollment state in the agent's state dir: where to
// renew, and how the last renewal went. Its presence means the node
// enrolled online and renews there.
const StateFile = "enroll.json"

// TokenFile is the name of the token file `patchringd run` looks for
// beside its config file at first start (/etc/patchring/enroll.token for
// the system service).
const TokenFile = "enroll.token"

// State is the content of StateFile.
type State struct {
	Service  string    `json:"service"`
	Pin      string    `json:"pin,omitempty"`
	Origin   string    `json:"origin"`
	TokenID  string    `json:"token_id,omitempty"`
	Enrolled time.Time `json:"enrolled"`

	LastRenewal time.Time `json:"last_renewal,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastError and LastReason describe the last failed renewal, until
	// one succeeds.
	LastError  string `json:"last_error,omitempty"`
	LastReason string `json:"last_reason,omitempty"`
}

// ReadState reads the enrollment state of stateDir; errors wrap
// fs.ErrNotExist when the node never enrolled online.
func ReadState(stateDir string) (State, error) {
	var st State
	raw, err := os.ReadFile(filepath.Join(stateDir, StateFile))
	if err != nil {
		return st, fmt.Errorf("enrollment state: %w", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("enrollment state %s: %w", filepath.Join(stateDir, StateFile), err)
	}
	if st.Service == "" {
		return st, fmt.Errorf("enrollment state %s: no service URL", filepath.Join(stateDir, StateFile))
	}
	return st, nil
}

// Enrolled reports whether stateDir holds an online enrollment.
func Enrolled(stateDir string) bool {
	_, err := os.Stat(filepath.Join(stateDir, StateFile))
	return err == nil
}

func (st State) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("enrollment state: %w", err)
	}
	return append(b, '\n'), nil
}

func writeState(stateDir string, st State) error {
	b, err := st.marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(stateDir, StateFile), b, 0o600)
}

// ReadCredential reads and parses the node's credential; errors wrap
// fs.ErrNotExist when there is none.
func ReadCredential(stateDir string) (*credential.Credential, []byte, error) {
	path := filepath.Join(stateDir, credential.FileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("node credential: %w", err)
	}
	c, err := credential.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("node credential %s: %w", path, err)
	}
	return c, raw, nil
}

// HasCredential reports whether stateDir holds a credential file.
func HasCredential(stateDir string) bool {
	_, err := os.Stat(filepath.Join(stateDir, credential.FileName))
	return !errors.Is(err, fs.ErrNotExist)
}
