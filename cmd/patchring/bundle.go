package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/platform/apt/aptsnap"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

func newBundleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Carry the signed repository to a site without WAN: create an offline bundle, import it on an agent",
		Long: "An offline bundle is a copy of the fleet's signed repository (metadata and targets: the policy and\n" +
			"the catalog's payloads). Agents verify it from their root of trust exactly as if it came from the\n" +
			"origin, so a bundle can travel on any medium. Import it on one node of a site; its peers then get\n" +
			"the policy and the payloads from it over the LAN.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var rf repoFlags
	var out string
	var af aptFlags
	create := &cobra.Command{
		Use:   "create --repo DIR --out FILE.tar.gz [--keys KEYDIR --apt-source URL --apt-suite S --apt-keyring FILE --apt-package P...]",
		Short: "Write the repository's metadata and targets to a bundle, optionally with a signed apt snapshot",
		Long: `Write the repository's metadata and targets to a bundle.

With --apt-source (or --apt-list FILE), the apt content an offline site needs is
pinned into the repository first: the archive's InRelease (checked with gpgv
against --apt-keyring), the Packages indices it lists and the .deb files of the
packages named, each checked against the verified hashes, become targets
apt/<kind>/<sha256> of the signed metadata (replacing the previous apt
snapshot), and targets, snapshot and timestamp are re-signed (--keys needed).
Agents of the site then serve apt-get update and upgrades from the bundle with
no WAN, past Debian's Valid-Until while the signed metadata is in force
(docs/APT.md).

With --apt-inventory FILE (the site's reports, from patchring bundle
export-reports on one of its nodes), every package the archive carries at a
newer version than one a node of the site has installed is carried too: the
site's pending updates, without naming them. A package no node has yet (a new
dependency of an update) must still be named with --apt-package.

An --apt-list file has one source per line:
  URL SUITE KEYRING PACKAGE...
(# starts a comment).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.needDir(); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("bundle create: --out FILE is required")
			}
			srcs, err := af.sources()
			if err != nil {
				return fmt.Errorf("bundle create: %w", err)
			}
			if len(srcs) > 0 {
				r, err := rf.open(a, true)
				if err != nil {
					return fmt.Errorf("bundle create: %w", err)
				}
				files, err := aptsnap.Pin(cmd.Context(), namedRepo{r}, srcs, aptsnap.Options{Prefix: trust.AptPrefix})
				if err != nil {
					return fmt.Errorf("bundle create: %w", err)
				}
				v, err := r.Publish()
				if err != nil {
					return fmt.Errorf("bundle create: %w", err)
				}
				var size int64
				for _, f := range files {
					size += f.Size
				}
				fmt.Fprintf(a.Out, "pinned apt snapshot: %d files, %s (targets v%d, snapshot v%d, timestamp v%d)\n",
					len(files), bytesStr(size), v.Targets, v.Snapshot, v.Timestamp)
			}
			n, size, err := writeBundle(rf.dir, out)
			if err != nil {
				os.Remove(out)
				return fmt.Errorf("bundle create: %w", err)
			}
			fmt.Fprintf(a.Out, "wrote %s: %d files, %s\n", out, n, bytesStr(size))
			return nil
		},
	}
	rf.bind(create)
	create.Flags().StringVar(&out, "out", "", "bundle file to write (.tar.gz)")
	af.bind(create)
	cmd.AddCommand(newBundleExportReportsCmd(a))
	cmd.AddCommand(create, &cobra.Command{
		Use:   "import FILE",
		Short: "Make the local agent verify a bundle and adopt its policy and payloads (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			abs, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			res, err := a.client().ImportBundle(cmd.Context(), abs)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.Out, "imported %s: policy %s %q verified, %d payloads into the content store\n", res.Path, res.PolicyVersion, res.Policy, res.Payloads)
			if res.AdvisoryDB {
				fmt.Fprintf(a.Out, "  signed advisory database into the content store\n")
			}
			if res.AptFiles > 0 {
				fmt.Fprintf(a.Out, "  apt snapshot: %d files into the content store, %d releases pinned in the apt proxy\n", res.AptFiles, res.AptReleases)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(a.Out, "  skipped %s\n", s)
			}
			return nil
		},
	})
	return cmd
}

// writeBundle tars repo's metadata/ and targets/ into a gzip file.
func writeBundle(repo, out string) (files int, size int64, err error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, top := range []string{"metadata", "targets"} {
		root := filepath.Join(repo, top)
		if _, err := os.Stat(root); err != nil {
			return files, size, fmt.Errorf("%s is not a patchring repository: %w", repo, err)
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repo, p)
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !d.IsDir() && !info.Mode().IsRegular() {
				return nil // symlinks and the like are not part of a repository
			}
			hdr, err := tar.FileInfoHeader(info, "")
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(rel)
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, src)
			src.Close()
			files++
			size += n
			return err
		})
		if err != nil {
			return files, size, err
		}
	}
	if err := tw.Close(); err != nil {
		return files, size, err
	}
	return files, size, zw.Close()
}

// aptFlags name the apt content of a bundle.
type aptFlags struct {
	source, suite, list             string
	keyrings, packages, inventories []string
}

func (f *aptFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.source, "apt-source", "", "http:// URL of a Debian archive to pin a snapshot of")
	cmd.Flags().StringVar(&f.suite, "apt-suite", "", "distribution of --apt-source, e.g. bookworm-security")
	cmd.Flags().StringArrayVar(&f.keyrings, "apt-keyring", nil, "keyring apt trusts for --apt-source (repeatable)")
	cmd.Flags().StringArrayVar(&f.packages, "apt-package", nil, "package of --apt-source to carry (repeatable)")
	cmd.Flags().StringVar(&f.list, "apt-list", "", "file of sources: URL SUITE KEYRING PACKAGE... per line")
	cmd.Flags().StringArrayVar(&f.inventories, "apt-inventory", nil,
		"the site's reports (patchring bundle export-reports): also carry every package the archive has newer than a version a node has installed (repeatable)")
}

// sources returns the apt sources the flags name (none: no apt content).
func (f *aptFlags) sources() ([]aptsnap.Source, error) {
	var out []aptsnap.Source
	if f.source != "" {
		if f.suite == "" || len(f.keyrings) == 0 {
			return nil, fmt.Errorf("--apt-source %s needs --apt-suite and --apt-keyring", f.source)
		}
		out = append(out, aptsnap.Source{URL: f.source, Suite: f.suite, Keyrings: f.keyrings, Packages: f.packages})
	} else if f.suite != "" || len(f.keyrings) > 0 || len(f.packages) > 0 {
		return nil, fmt.Errorf("--apt-suite, --apt-keyring and --apt-package need --apt-source")
	}
	if f.list != "" {
		data, err := os.ReadFile(f.list)
		if err != nil {
			return nil, fmt.Errorf("--apt-list: %w", err)
		}
		ls, err := parseAptList(f.list, string(data))
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	if len(f.inventories) > 0 {
		if len(out) == 0 {
			return nil, fmt.Errorf("--apt-inventory needs --apt-source or --apt-list")
		}
		installed, err := siteInventory(f.inventories)
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i].Installed = installed
		}
	}
	return out, nil
}

// siteInventory reads the site's exported reports and returns what its
// nodes have installed: package name -> versions. Each record must carry
// a valid signature of its node; of each node the newest record with a
// package list counts.
func siteInventory(paths []string) (map[string][]string, error) {
	type latest struct {
		seq  uint64
		pkgs []report.Package
	}
	nodes := map[string]latest{}
	for _, p := range paths {
		envs, err := readReportBundle(p)
		if err != nil {
			return nil, fmt.Errorf("--apt-inventory: %w", err)
		}
		for i, env := range envs {
			rec, _, err := report.Open(env)
			if err != nil {
				return nil, fmt.Errorf("--apt-inventory %s: records[%d]: %w", p, i, err)
			}
			if len(rec.Packages) == 0 {
				continue
			}
			if l, ok := nodes[rec.Node]; !ok || rec.Seq > l.seq {
				nodes[rec.Node] = latest{rec.Seq, rec.Packages}
			}
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("--apt-inventory %s: no record carries a package list (export the reports after the nodes have reported once)", strings.Join(paths, ", "))
	}
	out := map[string][]string{}
	for _, l := range nodes {
		for _, pkg := range l.pkgs {
			if !slices.Contains(out[pkg.Name], pkg.Version) {
				out[pkg.Name] = append(out[pkg.Name], pkg.Version)
			}
		}
	}
	return out, nil
}

// parseAptList reads an --apt-list file: URL SUITE KEYRING PACKAGE... per
// line, # comments.
func parseAptList(name, text string) ([]aptsnap.Source, error) {
	var out []aptsnap.Source
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s:%d: want URL SUITE KEYRING PACKAGE..., got %q", name, i+1, strings.TrimSpace(line))
		}
		out = append(out, aptsnap.Source{URL: fields[0], Suite: fields[1], Keyrings: []string{fields[2]}, Packages: fields[3:]})
	}
	return out, nil
}

// namedRepo is a repository as aptsnap changes it.
type namedRepo struct{ *tufrepo.Repo }

func (r namedRepo) TargetNames() []string {
	var out []string
	for _, t := range r.ListTargets() {
		out = append(out, t.Name)
	}
	return out
}
