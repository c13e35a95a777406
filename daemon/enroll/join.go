package enroll

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
)

// Node is the enrolling node: its ID and a way to sign with its key (the
// agent's libp2p key signs raw ed25519).
type Node struct {
	ID       string
	Hostname string
	Sign     func([]byte) ([]byte, error)
}

// JoinConfig configures Join.
type JoinConfig struct {
	Token *penroll.Token
	Node  Node
	// StateDir receives node.credential and enroll.json.
	StateDir string
	// ConfigFile is the agent's config file: created, or updated with
	// the origin, the trusted root's path and the site.
	ConfigFile string
	Log        *slog.Logger
	Now        func() time.Time
}

// Joined is what Join installed.
type Joined struct {
	Credential *credential.Credential
	RootFile   string
	ConfigFile string
}

// Join enrolls the node with a token: it asks the token's issuing service
// for a credential, verifies the credential in the fleet document fetched
// through TUF from the token's origin with the token's root, and then
// installs the trusted root, the credential, the enrollment state and the
// config. Everything is written to staging files first and renamed into
// place at the end, so a failure (service down, token refused, a write
// failing) leaves none of them changed.
func Join(ctx context.Context, cfg JoinConfig) (*Joined, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tok := cfg.Token
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("enroll: state dir: %w", err)
	}
	req, err := credential.NewRequest(cfg.Node.ID, cfg.Node.Hostname, penroll.EnrollNonce(tok.ID, tok.Secret), cfg.Now(), cfg.Node.Sign)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	client := &penroll.Client{Service: tok.Service, Pin: tok.Pin}
	cred, raw, err := client.Enroll(ctx, tok, req)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	// The credential must be one the fleet of the token's root accepts:
	// this also proves the service belongs to that fleet.
	scratch, err := os.MkdirTemp(cfg.StateDir, ".enroll-")
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer os.RemoveAll(scratch)
	of, err := penroll.NewOriginFleet(tok.Origin, tok.Root, scratch, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	tr, err := of.Fleet(ctx)
	if err != nil {
		return nil, fmt.Errorf("enroll: fleet document from the origin %s: %w", tok.Origin, err)
	}
	if err := tr.VerifyFor(cred, cfg.Node.ID, cfg.Now()); err != nil {
		return nil, fmt.Errorf("enroll: the credential from %s does not verify in the fleet document of %s: %w", tok.Service, tok.Origin, err)
	}

	cfgFile, err := filepath.Abs(cfg.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("enroll: config file: %w", err)
	}
	conf, rootFile, err := joinedConfig(cfgFile, tok.Origin, cred.Site)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	state, err := State{Service: tok.Service, Pin: tok.Pin, Origin: tok.Origin, TokenID: tok.ID, Enrolled: cfg.Now().UTC()}.marshal()
	if err != nil {
		return nil, err
	}
	// The config goes last: it is what makes the agent follow the fleet.
	files := []stagedFile{
		{path: rootFile, data: tok.Root, perm: 0o644},
		{path: filepath.Join(cfg.StateDir, credential.FileName), data: raw, perm: 0o600},
		{path: filepath.Join(cfg.StateDir, StateFile), data: state, perm: 0o600},
		{path: cfgFile, data: conf, perm: 0o644},
	}
	if err := installAll(files); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	cfg.Log.Info("enrolled", "node", cred.NodeID, "site", cred.Site, "tags", cred.Tags, "serial", cred.Serial,
		"valid_until", cred.NotAfter, "service", tok.Service, "origin", tok.Origin, "config", cfgFile)
	return &Joined{Credential: cred, RootFile: rootFile, ConfigFile: cfgFile}, nil
}

// joinedConfig returns the config file's new content: the existing file
// (if any) with policy.origin, policy.root_file and site set, checked the
// way patchringd will read it. The root goes where the file already
// points, or beside the config file as root.json.
func joinedConfig(path, origin, site string) ([]byte, string, error) {
	doc := map[string]any{}
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return nil, "", fmt.Errorf("config %s: %w", path, err)
		}
		if doc == nil {
			doc = map[string]any{}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("config: %w", err)
	}
	pol, _ := doc["policy"].(map[string]any)
	if pol == nil {
		pol = map[string]any{}
	}
	rootFile, _ := pol["root_file"].(string)
	if rootFile == "" {
		rootFile = filepath.Join(filepath.Dir(path), "root.json")
	}
	pol["origin"] = origin
	pol["root_file"] = rootFile
	doc["policy"] = pol
	doc["site"] = site
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, "", fmt.Errorf("config %s: %w", path, err)
	}
	out = append([]byte("# Written by patchringd enroll; edit freely (site and tags come from the node's credential).\n"), out...)
	c := config.Default()
	if err := config.Parse(path, out, &c); err != nil {
		return nil, "", err
	}
	if err := c.Validate(path); err != nil {
		return nil, "", err
	}
	return out, rootFile, nil
}

type stagedFile struct {
	path string
	data []byte
	perm os.FileMode
	tmp  string
}

// stageSuffix names a staged file beside its destination.
const stageSuffix = ".enroll-new"

// installAll writes every file to a staging name beside it (synced), and
// only when all are written renames them into place in order. A failure
// while staging removes the staged files and changes nothing.
func installAll(files []stagedFile) (err error) {
	defer func() {
		if err != nil {
			for _, f := range files {
				if f.tmp != "" {
					os.Remove(f.tmp)
				}
			}
		}
	}()
	for i := range files {
		f := &files[i]
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return fmt.Errorf("stage %s: %w", f.path, err)
		}
		tmp := f.path + stageSuffix
		if err := writeSynced(tmp, f.data, f.perm); err != nil {
			return fmt.Errorf("stage %s: %w", f.path, err)
		}
		f.tmp = tmp
	}
	for i := range files {
		f := &files[i]
		if err := os.Rename(f.tmp, f.path); err != nil {
			return fmt.Errorf("install %s: %w", f.path, err)
		}
		f.tmp = ""
		if err := atomicfile.SyncDir(filepath.Dir(f.path)); err != nil {
			return fmt.Errorf("install %s: %w", f.path, err)
		}
	}
	return nil
}

func writeSynced(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return os.Chmod(path, perm)
}
