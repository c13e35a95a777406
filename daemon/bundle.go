package daemon

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

// Limits on an offline bundle: it comes from an admin, but a damaged or
// hostile file must not fill the disk.
const (
	maxBundleBytes = 16 << 30
	maxBundleFiles = 100000
)

func (d *Daemon) bundleRoutes() {
	d.api.Handle(http.MethodPost, "/bundle/import", localapi.PermAdmin, func(ctx context.Context, r *localapi.Request) (any, error) {
		var req apitypes.BundleImportRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if !filepath.IsAbs(req.Path) {
			return nil, localapi.BadRequest("bundle path %q must be absolute (the agent reads it itself)", req.Path)
		}
		return d.importBundle(ctx, req.Path)
	})
}

// importBundle verifies an offline bundle (a copy of the fleet's signed
// repository made with `patchring bundle create`) through TUF from the
// agent's trusted root, adopts its policy and puts its catalog payloads,
// each checked against its signed hash, into the content store.
func (d *Daemon) importBundle(ctx context.Context, file string) (apitypes.BundleImport, error) {
	out := apitypes.BundleImport{Path: file}
	if d.pol == nil || d.trust == nil {
		return out, localapi.Unavailable("this agent has no policy source configured (policy.root_file): there is no root of trust to verify a bundle with")
	}
	dir, err := os.MkdirTemp(d.cfg.StateDir, ".bundle-*")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	n, err := extractBundle(file, dir)
	if err != nil {
		return out, localapi.BadRequest("bundle %s: %v", file, err)
	}
	out.Files = n
	src := &trust.DirSource{Dir: dir, Label: "bundle " + filepath.Base(file)}
	if err := d.pol.RefreshFrom(ctx, []trust.Source{src}); err != nil {
		return out, localapi.Conflict("bundle %s does not verify against this fleet's root of trust: %v", file, err)
	}
	ep := d.pol.Effective()
	out.PolicyVersion, out.Policy = ep.Version, ep.Name
	for _, e := range d.pol.Catalog() {
		if d.content == nil {
			out.Skipped = append(out.Skipped, e.Name+": no content store on this agent (apt or p2p off)")
			continue
		}
		if err := d.importPayload(ctx, dir, e.Name); err != nil {
			out.Skipped = append(out.Skipped, e.Name+": "+err.Error())
			continue
		}
		out.Payloads++
	}
	d.log.Info("offline bundle imported", "file", file, "policy", out.PolicyVersion, "payloads", out.Payloads, "skipped", len(out.Skipped))
	d.triggerEngine()
	return out, nil
}

func (d *Daemon) importPayload(ctx context.Context, dir, target string) error {
	loc, err := d.trust.LocateTarget(target)
	if err != nil {
		return err
	}
	h, err := content.ParseHash(loc.Hashes["sha256"])
	if err != nil {
		return fmt.Errorf("signed sha256: %w", err)
	}
	if d.content.Has(h) {
		return nil
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(loc.Path)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("not in the bundle")
		}
		return err
	}
	defer f.Close()
	// Put verifies the length and SHA-256 before the payload is visible.
	return d.content.Put(ctx, h, loc.Length, f)
}

// extractBundle unpacks a .tar or .tar.gz of a repository (metadata/ and
// targets/) into dir: regular files and directories only, no path
// leaving dir, within the size and count limits.
func extractBundle(file, dir string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		f.Seek(0, io.SeekStart)
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		f.Seek(0, io.SeekStart)
	}
	tr := tar.NewReader(r)
	var files int
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return files, fmt.Errorf("read: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			continue
		}
		if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") ||
			!(name == "metadata" || name == "targets" || strings.HasPrefix(name, "metadata/") || strings.HasPrefix(name, "targets/")) {
			return files, fmt.Errorf("entry %q: a bundle holds only metadata/ and targets/", hdr.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return files, err
			}
		case tar.TypeReg:
			files++
			total += hdr.Size
			if files > maxBundleFiles || total > maxBundleBytes {
				return files, fmt.Errorf("more than %d files or %d bytes", maxBundleFiles, int64(maxBundleBytes))
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return files, err
			}
			w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return files, fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(w, io.LimitReader(tr, hdr.Size))
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return files, fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		default:
			return files, fmt.Errorf("entry %q: only regular files and directories are allowed", hdr.Name)
		}
	}
	if files == 0 {
		return 0, errors.New("no files: make one with `patchring bundle create`")
	}
	return files, nil
}
