package apttest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

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

// readArMember returns the next member of an ar archive (the container
// format of .deb files) after the global header: its name and a reader of
// its data. A library was tried first; it panicked on malformed headers.
func readArMember(r *bufio.Reader) (string, *arData, error) {
	var h [60]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return "", nil, io.EOF
		}
		return "", nil, fmt.Errorf("ar header: %w", err)
	}
	if h[58] != '`' || h[59] != '\n' {
		return "", nil, errors.New("ar header: bad magic")
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return "", nil, fmt.Errorf("ar header: bad size %q", h[48:58])
	}
	name := strings.TrimRight(strings.TrimSpace(string(h[0:16])), "/")
	return name, &arData{r: io.LimitReader(r, size), pad: size % 2, src: r}, nil
}

// arData reads one member's data; skip discards what is left of it and
// the padding byte that keeps members at even offsets.
type arData struct {
	r   io.Reader
	pad int64
	src io.Reader
}

func (d *arData) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *arData) skip() error {
	if _, err := io.Copy(io.Discard, d.r); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, d.src, d.pad)
	if errors.Is(err, io.EOF) {
		return nil // a final member may lack its padding
	}
	return err
}

func readDebInfo(r io.Reader) (DebInfo, error) {
	br := bufio.NewReader(r)
	var magic [8]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil || string(magic[:]) != "!<arch>\n" {
		return DebInfo{}, errors.New("not an ar archive")
	}
	for {
		name, data, err := readArMember(br)
		if errors.Is(err, io.EOF) {
			return DebInfo{}, errors.New("no control member")
		}
		if err != nil {
			return DebInfo{}, err
		}
		if !strings.HasPrefix(name, "control.tar") {
			if err := data.skip(); err != nil {
				return DebInfo{}, fmt.Errorf("ar member %s: %w", name, err)
			}
			continue
		}
		member, err := io.ReadAll(io.LimitReader(data, maxControl))
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

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
