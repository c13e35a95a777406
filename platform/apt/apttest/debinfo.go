package apttest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/blakesmith/ar"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// DebInfo is what the repository needs from a .deb's control file.
type DebInfo struct {
	Package      string
	Version      string
	Architecture string
	// Control is the control file's text without its trailing newlines.
	Control string
}

// maxControl bounds the control member and control file we read.
const maxControl = 16 << 20

// ReadDebInfo reads the control file of the .deb at path.
func ReadDebInfo(path string) (DebInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return DebInfo{}, fmt.Errorf("read deb %s: %w", path, err)
	}
	defer f.Close()
	info, err := readDebInfo(f)
	if err != nil {
		return DebInfo{}, fmt.Errorf("read deb %s: %w", path, err)
	}
	return info, nil
}

func readDebInfo(r io.Reader) (DebInfo, error) {
	arr := ar.NewReader(r)
	for {
		h, err := arr.Next()
		if errors.Is(err, io.EOF) {
			return DebInfo{}, errors.New("no control member")
		}
		if err != nil {
			return DebInfo{}, fmt.Errorf("ar: %w", err)
		}
		name := strings.TrimRight(strings.TrimSpace(h.Name), "/")
		if !strings.HasPrefix(name, "control.tar") {
			continue
		}
		member, err := io.ReadAll(io.LimitReader(arr, maxControl))
		if err != nil {
			return DebInfo{}, fmt.Errorf("ar member %s: %w", name, err)
		}
		var tr io.Reader
		switch strings.TrimPrefix(name, "control.tar") {
		case "":
			tr = bytes.NewReader(member)
		case ".gz":
			zr, err := gzip.NewReader(bytes.NewReader(member))
			if err != nil {
				return DebInfo{}, fmt.Errorf("%s: %w", name, err)
			}
			tr = zr
		case ".xz":
			zr, err := xz.NewReader(bytes.NewReader(member))
			if err != nil {
				return DebInfo{}, fmt.Errorf("%s: %w", name, err)
			}
			tr = zr
		case ".zst":
			zr, err := zstd.NewReader(bytes.NewReader(member))
			if err != nil {
				return DebInfo{}, fmt.Errorf("%s: %w", name, err)
			}
			defer zr.Close()
			tr = zr
		default:
			return DebInfo{}, fmt.Errorf("unsupported control member %s", name)
		}
		return readControlTar(tar.NewReader(tr))
	}
}

func readControlTar(tr *tar.Reader) (DebInfo, error) {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return DebInfo{}, errors.New("control archive has no control file")
		}
		if err != nil {
			return DebInfo{}, fmt.Errorf("control archive: %w", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "control" {
			continue
		}
		body, err := io.ReadAll(io.LimitReader(tr, maxControl))
		if err != nil {
			return DebInfo{}, fmt.Errorf("control file: %w", err)
		}
		return parseControl(string(body))
	}
}

// parseControl reads the fields the repository needs from a control file.
func parseControl(text string) (DebInfo, error) {
	info := DebInfo{Control: strings.TrimRight(text, "\n")}
	for _, line := range strings.Split(info.Control, "\n") {
		if line == "" {
			return DebInfo{}, errors.New("control file has more than one paragraph")
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return DebInfo{}, fmt.Errorf("control file: malformed line %q", line)
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "package":
			info.Package = v
		case "version":
			info.Version = v
		case "architecture":
			info.Architecture = v
		}
	}
	if info.Package == "" || info.Version == "" || info.Architecture == "" {
		return DebInfo{}, errors.New("control file lacks Package, Version or Architecture")
	}
	return info, nil
}
