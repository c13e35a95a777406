package archive

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// MaxStanzaLine bounds one line of a Packages index (long Description
// lines included).
const MaxStanzaLine = 1 << 20

// DebHash is a package file a Packages index lists.
type DebHash struct {
	Package  string // the stanza's Package field
	Version  string // the stanza's Version field
	Filename string // relative to the archive root, e.g. "pool/main/h/hello/hello_2.10-3_amd64.deb"
	Size     int64
	SHA256   string
}

// ParsePackages reads a (decompressed) Packages index and calls fn for each
// stanza with a Filename. A stanza with a Filename but no valid Size or
// SHA256 is an error: apt would not install from it either.
func ParsePackages(r io.Reader, fn func(DebHash) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxStanzaLine)
	var cur DebHash
	var haveSize bool
	line, start := 0, 0
	flush := func() error {
		defer func() { cur, haveSize = DebHash{}, false }()
		if cur.Filename == "" {
			return nil
		}
		if !haveSize || cur.SHA256 == "" {
			return fmt.Errorf("packages stanza at line %d (%s): %w: no Size or SHA256", start, cur.Filename, ErrMalformed)
		}
		return fn(cur)
	}
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if cur.Filename == "" && !haveSize && cur.SHA256 == "" && cur.Package == "" {
			start = line
		}
		if text[0] == ' ' || text[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok {
			return fmt.Errorf("packages line %d: %w: %q is not a field", line, ErrMalformed, text)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Package = v
		case "Version":
			cur.Version = v
		case "Filename":
			if !validRelPath(v) {
				return fmt.Errorf("packages line %d: %w: Filename %q", line, ErrMalformed, v)
			}
			cur.Filename = v
		case "Size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("packages line %d: %w: Size %q", line, ErrMalformed, v)
			}
			cur.Size, haveSize = n, true
		case "SHA256":
			sum := strings.ToLower(v)
			if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
				return fmt.Errorf("packages line %d: %w: SHA256 %q", line, ErrMalformed, v)
			}
			cur.SHA256 = sum
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("packages line %d: %w: %w", line+1, ErrMalformed, err)
	}
	return flush()
}

// IsPackagesIndex reports whether rel (relative to a distribution
// directory) names a binary Packages index in a form Decompress reads.
func IsPackagesIndex(rel string) bool {
	base := rel[strings.LastIndex(rel, "/")+1:]
	switch base {
	case "Packages", "Packages.gz", "Packages.xz", "Packages.bz2":
		return strings.Contains(rel, "binary-") || strings.Contains(rel, "/")
	}
	return false
}

// Decompress returns a reader of the decompressed content of an index
// file named name (by its extension: .gz, .xz, .bz2 or none).
func Decompress(name string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(r)
	case strings.HasSuffix(name, ".xz"):
		return xz.NewReader(bufio.NewReader(r))
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(r), nil
	case strings.HasSuffix(name, ".lz4"), strings.HasSuffix(name, ".zst"), strings.HasSuffix(name, ".lzma"):
		return nil, fmt.Errorf("decompress %s: compression not supported", name)
	}
	return r, nil
}
