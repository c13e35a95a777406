package dnf

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/patchring/patchring/platform/vercmp"
)

// RepomdData is one <data> entry of a repository's repomd.xml.
type RepomdData struct {
	Type         string // primary, filelists, updateinfo, ...
	Location     string // href, relative to the repository's base
	ChecksumType string // sha256, sha512, ...
	Checksum     string // lower-case hex
	Size         int64
}

// ParseRepomd parses repomd.xml. Every entry needs a type, a location and
// a checksum.
func ParseRepomd(data []byte) ([]RepomdData, error) {
	var doc struct {
		XMLName xml.Name `xml:"repomd"`
		Data    []struct {
			Type     string `xml:"type,attr"`
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
			Size int64 `xml:"size"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse repomd.xml: %w", err)
	}
	out := make([]RepomdData, 0, len(doc.Data))
	for i, d := range doc.Data {
		e := RepomdData{Type: d.Type, Location: d.Location.Href, ChecksumType: d.Checksum.Type,
			Checksum: strings.ToLower(strings.TrimSpace(d.Checksum.Value)), Size: d.Size}
		if e.Type == "" || e.Location == "" || e.ChecksumType == "" || !isHex(e.Checksum) {
			return nil, fmt.Errorf("parse repomd.xml: data entry %d (%q) lacks a type, location or hex checksum", i+1, e.Type)
		}
		out = append(out, e)
	}
	return out, nil
}

func isHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// PrimaryPackage is one package of a repository's primary metadata: what
// the repository's signed repomd.xml vouches for (through primary's
// checksum).
type PrimaryPackage struct {
	Name         string
	Arch         string
	EVR          vercmp.RPMVersion
	ChecksumType string // sha256 with createrepo_c's defaults
	Checksum     string // lower-case hex of the .rpm file
	Size         int64  // the .rpm file's size
	Location     string // href relative to the repository's base (or Base)
	Base         string // xml:base, when the package lives elsewhere
}

// NEVRA returns the package's NEVRA.
func (p PrimaryPackage) NEVRA() NEVRA { return NEVRA{Name: p.Name, EVR: p.EVR, Arch: p.Arch} }

// maxPrimary caps primary metadata after decompression.
const maxPrimary = 4 << 30

// ParsePrimary parses primary.xml, gzip-compressed or plain (other
// compressions are refused). Source packages are skipped.
func ParsePrimary(r io.Reader) ([]PrimaryPackage, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("parse primary: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	} else if magic, _ := br.Peek(5); len(magic) > 0 && !bytes.HasPrefix(bytes.TrimLeft(magic, " \t\r\n"), []byte("<")) {
		return nil, errors.New("parse primary: neither gzip nor XML (zstd, xz and bzip2 metadata are not supported)")
	}
	dec := xml.NewDecoder(io.LimitReader(br, maxPrimary))
	var out []PrimaryPackage
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse primary: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p struct {
			Type    string `xml:"type,attr"`
			Name    string `xml:"name"`
			Arch    string `xml:"arch"`
			Version struct {
				Epoch string `xml:"epoch,attr"`
				Ver   string `xml:"ver,attr"`
				Rel   string `xml:"rel,attr"`
			} `xml:"version"`
			Checksum struct {
				Type  string `xml:"type,attr"`
				Value string `xml:",chardata"`
			} `xml:"checksum"`
			Size struct {
				Package int64 `xml:"package,attr"`
			} `xml:"size"`
			Location struct {
				Href string `xml:"href,attr"`
				Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
			} `xml:"location"`
		}
		if err := dec.DecodeElement(&p, &se); err != nil {
			return nil, fmt.Errorf("parse primary: package %d: %w", len(out)+1, err)
		}
		if p.Arch == "src" || p.Arch == "nosrc" {
			continue
		}
		epoch := p.Version.Epoch
		if epoch == "0" {
			epoch = ""
		}
		pkg := PrimaryPackage{Name: p.Name, Arch: p.Arch, EVR: vercmp.RPMVersion{Epoch: epoch, Version: p.Version.Ver, Release: p.Version.Rel},
			ChecksumType: p.Checksum.Type, Checksum: strings.ToLower(strings.TrimSpace(p.Checksum.Value)),
			Size: p.Size.Package, Location: p.Location.Href, Base: p.Location.Base}
		if !validName(pkg.Name) || !validName(pkg.Arch) || pkg.EVR.Version == "" || pkg.Location == "" || !isHex(pkg.Checksum) || pkg.Size < 0 {
			return nil, fmt.Errorf("parse primary: package %d (%q) lacks a name, arch, version, location or hex checksum", len(out)+1, pkg.Name)
		}
		if _, err := vercmp.ParseRPM(pkg.EVR.String()); err != nil {
			return nil, fmt.Errorf("parse primary: package %s: %w", pkg.Name, err)
		}
		out = append(out, pkg)
	}
	return out, nil
}

// CheckDigest reports whether data has the checksum (sha256 only).
func CheckDigest(data []byte, typ, sum string) error {
	if typ != "sha256" {
		return fmt.Errorf("checksum type %q: only sha256 is accepted", typ)
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("sha256 is %x, repomd.xml says %s", got, sum)
	}
	return nil
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
