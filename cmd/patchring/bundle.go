package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
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
	create := &cobra.Command{
		Use:   "create --repo DIR --out FILE.tar.gz",
		Short: "Write the repository's metadata and targets to a bundle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.needDir(); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("bundle create: --out FILE is required")
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
