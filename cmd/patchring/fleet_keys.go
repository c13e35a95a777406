package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/secretfile"
)

// keyFingerprint is the fingerprint members announce for a gossip key
// (p2p/gossip.KeyFingerprint; repeated here so the CLI does not import the
// gossip package).
func keyFingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("patchring-gossip-key\x00"), key...))
	return hex.EncodeToString(sum[:8])
}

func readKeyFile(path string) (string, []byte, error) {
	data, err := secretfile.Read(path, "gossip key file")
	if err != nil {
		return "", nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return "", nil, fmt.Errorf("%s: not base64: %w", path, err)
		}
		return line, key, nil
	}
	return "", nil, fmt.Errorf("%s holds no key", path)
}

func printKeys(a *app, k apitypes.FleetKeys) error {
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tPRIMARY\tINSTALLED")
	for _, m := range k.Members {
		host := m.Hostname
		if m.Local {
			host += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", host, m.Liveness, m.Primary, strings.Join(m.Installed, " "))
	}
	return tw.Flush()
}

func newFleetKeysCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "keys",
		Short: "Show the gossip key fingerprints of this node and of every member of the site",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := a.client().FleetKeys(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(k)
			}
			return printKeys(a, k)
		},
	}
}

// writeNewKeyFile writes a new random 32-byte gossip key, base64 on one
// line, to a new file readable by its owner only, and returns the key.
func writeNewKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	data := "# patchring gossip key (primary first; keep this file mode 0600)\n" + base64.StdEncoding.EncodeToString(key) + "\n"
	if err := secretfile.Create(path, []byte(data)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w (choose a new file; an existing key is never replaced)", err)
		}
		return nil, err
	}
	return key, nil
}

func newFleetKeygenCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "keygen FILE",
		Example: "  patchring fleet keygen /etc/patchring/gossip.key   # then copy it, mode 0600, to every node of the site",
		Short:   "Write a new random gossip key to FILE, readable by its owner only (mode 0600)",
		Long: "keygen writes a new 32-byte gossip key, base64 on one line, to a new FILE with mode 0600 whatever\n" +
			"the umask, and prints its fingerprint. It never replaces an existing file. patchringd refuses a key\n" +
			"file other users can read or change. To change the key of a running site, use rotate-key instead.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := writeNewKeyFile(args[0])
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintf(a.Out, "gossip key %s written to %s (mode 0600)\nset gossip.key_file: %s on every node of the site, with the file copied there privately\n", keyFingerprint(key), args[0], args[0])
			return nil
		},
	}
}

func newFleetRotateKeyCmd(a *app) *cobra.Command {
	var keyFile string
	var force bool
	cmd := &cobra.Command{
		Use: "rotate-key new|install|use|remove --key-file FILE",
		Example: "  patchring fleet rotate-key new --key-file /root/gossip-2027.key\n" +
			"  patchring fleet rotate-key install --key-file /root/gossip-2027.key   # on every node\n" +
			"  patchring fleet rotate-key use --key-file /root/gossip-2027.key       # on every node\n" +
			"  patchring fleet rotate-key remove --key-file /root/gossip-2026.key    # the OLD key, on every node",
		Short: "Rotate the site's gossip key without downtime, one step at a time (see docs/GOSSIP.md)",
		Long: "A rotation has four steps; run install, use and remove on every node of the fleet (e.g. through\n" +
			"config management), waiting for each step to reach every member before the next:\n" +
			"  new      write a new random key to FILE (root-only) and print its fingerprint\n" +
			"  install  this node accepts the new key (and keeps encrypting with the old one)\n" +
			"  use      this node encrypts with the new key; refused while a live member has not installed it\n" +
			"  remove   this node forgets the old key (FILE names the old key); refused while a live member\n" +
			"           still encrypts with it\n" +
			"The agent keeps its keyring in its key file, so a restart keeps the rotation.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			step := args[0]
			if keyFile == "" {
				return fmt.Errorf("rotate-key: --key-file FILE is required")
			}
			if step == "new" {
				key, err := writeNewKeyFile(keyFile)
				if err != nil {
					return fmt.Errorf("rotate-key new: %w", err)
				}
				fmt.Fprintf(a.Out, "new gossip key %s written to %s\nnext: patchring fleet rotate-key install --key-file %s (on every node)\n", keyFingerprint(key), keyFile, keyFile)
				return nil
			}
			b64, key, err := readKeyFile(keyFile)
			if err != nil {
				return fmt.Errorf("rotate-key: %w", err)
			}
			fp := keyFingerprint(key)
			c := a.client()
			before, err := c.FleetKeys(cmd.Context())
			if err != nil {
				return err
			}
			var lagging []string
			for _, m := range before.Members {
				if m.Liveness != "alive" || m.Local {
					continue
				}
				switch {
				case step == "use" && !slices.Contains(m.Installed, fp):
					lagging = append(lagging, m.Hostname+" has not installed it")
				case step == "remove" && m.Primary == fp:
					lagging = append(lagging, m.Hostname+" still encrypts with it")
				}
			}
			if len(lagging) > 0 && !force {
				return &exitError{code: 1, msg: fmt.Sprintf("rotate-key %s: not every member is ready for this step (key %s): %s; run the previous step there first (or --force)",
					step, fp, strings.Join(lagging, "; "))}
			}
			switch step {
			case "install", "use", "remove":
			default:
				return fmt.Errorf("rotate-key: unknown step %q: use new, install, use or remove", step)
			}
			op := step
			after, err := c.ChangeKey(cmd.Context(), op, b64)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "%s: key %s on this node. The site now:\n", step, fp)
			return printKeys(a, after)
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "file holding the key (base64)")
	cmd.Flags().BoolVar(&force, "force", false, "go ahead although members lag")
	return cmd
}
