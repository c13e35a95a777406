package archive

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// MaxReleaseSize bounds a Release or InRelease file. Debian's main
// archive's InRelease is about 150 KB; anything much larger is refused
// before it is read into memory.
const MaxReleaseSize = 16 << 20

// FileHash is one index file a Release file lists.
type FileHash struct {
	Path   string // relative to the distribution directory, e.g. "main/binary-amd64/Packages.xz"
	Size   int64
	SHA256 string // lower-case hex
}

// Release is the verified content of an InRelease or Release file.
type Release struct {
	Origin, Label, Suite, Codename string
	// Date is when the archive signed it; ValidUntil is when apt stops
	// accepting it (zero: no limit).
	Date, ValidUntil time.Time
	// AcquireByHash is set when the archive serves its indices under
	// by-hash/SHA256/<hash> too.
	AcquireByHash bool
	// Files are the index files with a SHA256 entry, by Path.
	Files map[string]FileHash
}

// ErrMalformed is wrapped by every parse error of archive metadata.
var ErrMalformed = errors.New("malformed archive metadata")

// releaseDateLayouts are the date formats apt accepts in Release files.
var releaseDateLayouts = []string{
	time.RFC1123, time.RFC1123Z,
	"Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 02 Jan 2006 15:04:05 -0700 (MST)",
}

func parseReleaseDate(s string) (time.Time, error) {
	for _, l := range releaseDateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: date %q is not in RFC 1123 form", ErrMalformed, s)
}

// ParseRelease parses the text of a Release file (for an InRelease file,
// the text gpgv verified, without the signature armour). Only SHA256 is
// read from the hash lists: MD5 and SHA1 are not trusted.
func ParseRelease(data []byte) (*Release, error) {
	if len(data) > MaxReleaseSize {
		return nil, fmt.Errorf("%w: Release file of %d bytes exceeds %d", ErrMalformed, len(data), MaxReleaseSize)
	}
	r := &Release{Files: map[string]FileHash{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxReleaseSize)
	field := ""
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			// A Release file is one stanza; a blank line ends it.
			break
		}
		if text[0] == ' ' || text[0] == '\t' {
			if field != "SHA256" {
				continue
			}
			fh, err := parseHashLine(text)
			if err != nil {
				return nil, fmt.Errorf("release line %d: %w", line, err)
			}
			if prev, dup := r.Files[fh.Path]; dup && prev != fh {
				return nil, fmt.Errorf("release line %d: %w: %s listed twice with different hashes", line, ErrMalformed, fh.Path)
			}
			r.Files[fh.Path] = fh
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("release line %d: %w: %q is not a field", line, ErrMalformed, text)
		}
		field = k
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "Origin":
			r.Origin = v
		case "Label":
			r.Label = v
		case "Suite":
			r.Suite = v
		case "Codename":
			r.Codename = v
		case "Date":
			r.Date, err = parseReleaseDate(v)
		case "Valid-Until":
			r.ValidUntil, err = parseReleaseDate(v)
		case "Acquire-By-Hash":
			r.AcquireByHash = strings.EqualFold(v, "yes")
		}
		if err != nil {
			return nil, fmt.Errorf("release line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("release: %w: %w", ErrMalformed, err)
	}
	if r.Date.IsZero() {
		return nil, fmt.Errorf("release: %w: no Date field", ErrMalformed)
	}
	if len(r.Files) == 0 {
		return nil, fmt.Errorf("release: %w: no SHA256 file list", ErrMalformed)
	}
	return r, nil
}

// parseHashLine parses " <sha256> <size> <path>".
func parseHashLine(s string) (FileHash, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return FileHash{}, fmt.Errorf("%w: hash line %q has %d fields, want 3", ErrMalformed, s, len(f))
	}
	sum := strings.ToLower(f[0])
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return FileHash{}, fmt.Errorf("%w: %q is not a SHA-256", ErrMalformed, f[0])
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 {
		return FileHash{}, fmt.Errorf("%w: size %q", ErrMalformed, f[1])
	}
	p := f[2]
	if !validRelPath(p) {
		return FileHash{}, fmt.Errorf("%w: path %q", ErrMalformed, p)
	}
	return FileHash{Path: p, Size: size, SHA256: sum}, nil
}

// validRelPath reports whether p is a clean relative path that stays
// below its directory.
func validRelPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// Lookup finds the index file at rel (relative to the distribution
// directory). A by-hash path (<dir>/by-hash/SHA256/<hash>) matches a file
// of that hash listed in <dir>.
func (r *Release) Lookup(rel string) (FileHash, bool) {
	if fh, ok := r.Files[rel]; ok {
		return fh, true
	}
	dir, sum, ok := SplitByHash(rel)
	if !ok {
		return FileHash{}, false
	}
	for _, fh := range r.Files {
		if fh.SHA256 == sum && path.Dir(fh.Path) == dir {
			return fh, true
		}
	}
	return FileHash{}, false
}

// SplitByHash splits "<dir>/by-hash/SHA256/<hash>" into dir and hash; ok is
// false for any other path (including other hash kinds).
func SplitByHash(rel string) (dir, sum string, ok bool) {
	i := strings.LastIndex(rel, "/by-hash/SHA256/")
	if i < 0 {
		if strings.HasPrefix(rel, "by-hash/SHA256/") {
			dir, sum = ".", strings.TrimPrefix(rel, "by-hash/SHA256/")
		} else {
			return "", "", false
		}
	} else {
		dir, sum = rel[:i], rel[i+len("/by-hash/SHA256/"):]
	}
	sum = strings.ToLower(sum)
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return "", "", false
	}
	return dir, sum, true
}

// CheckFresh refuses a Release that apt would refuse for its dates at now:
// past its Valid-Until, or dated more than skew in the future.
func (r *Release) CheckFresh(now time.Time, skew time.Duration) error {
	if !r.ValidUntil.IsZero() && now.After(r.ValidUntil) {
		return fmt.Errorf("%w: expired at %s (Valid-Until)", ErrStale, r.ValidUntil.Format(time.RFC3339))
	}
	if r.Date.After(now.Add(skew)) {
		return fmt.Errorf("%w: dated %s, in the future", ErrStale, r.Date.Format(time.RFC3339))
	}
	return nil
}

// ErrStale is wrapped when a Release file is expired, from the future, or
// older than one already verified for the same distribution (a replay).
var ErrStale = errors.New("stale release")
