package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Source is one apt source: where it is and which keys vouch for it.
type Source struct {
	URIs   []string // with a trailing slash
	Suites []string
	// SignedBy is the source's Signed-By: keyring files, key fingerprints
	// or an inline armoured key block. Empty: apt's trusted keyrings.
	SignedBy []string
	// Trusted is [trusted=yes]: apt does not check signatures for it, and
	// the proxy cannot verify it either.
	Trusted bool
	// Where names the file and line it came from, for errors.
	Where string
}

// ParseSourcesList parses a one-line-style sources.list file (name is used
// in errors). deb-src lines are kept: they name an archive too.
func ParseSourcesList(name string, data []byte) ([]Source, error) {
	var out []Source
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, line)
		typ, rest, _ := strings.Cut(text, " ")
		if typ != "deb" && typ != "deb-src" {
			return nil, fmt.Errorf("%s: %w: type %q is not deb or deb-src", where, ErrMalformed, typ)
		}
		rest = strings.TrimSpace(rest)
		s := Source{Where: where}
		if strings.HasPrefix(rest, "[") {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s: %w: options not closed with ]", where, ErrMalformed)
			}
			for _, opt := range strings.Fields(rest[1:end]) {
				k, v, ok := strings.Cut(opt, "=")
				if !ok {
					return nil, fmt.Errorf("%s: %w: option %q has no value", where, ErrMalformed, opt)
				}
				switch k {
				case "signed-by":
					s.SignedBy = append(s.SignedBy, strings.Split(v, ",")...)
				case "trusted":
					s.Trusted = v == "yes"
				}
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: %w: want URI and suite", where, ErrMalformed)
		}
		s.URIs = []string{withSlash(f[0])}
		s.Suites = []string{f[1]}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ParseDeb822Sources parses a deb822-style .sources file.
func ParseDeb822Sources(name string, data []byte) ([]Source, error) {
	var out []Source
	fields := map[string]string{}
	key := ""
	line, start := 0, 1
	flush := func() error {
		defer func() { fields, key = map[string]string{}, "" }()
		if len(fields) == 0 {
			return nil
		}
		where := fmt.Sprintf("%s:%d", name, start)
		if strings.EqualFold(fields["enabled"], "no") {
			return nil
		}
		s := Source{Where: where, Suites: strings.Fields(fields["suites"]), Trusted: strings.EqualFold(fields["trusted"], "yes")}
		for _, u := range strings.Fields(fields["uris"]) {
			s.URIs = append(s.URIs, withSlash(u))
		}
		if len(s.URIs) == 0 || len(s.Suites) == 0 {
			return fmt.Errorf("%s: %w: a source needs URIs and Suites", where, ErrMalformed)
		}
		if sb := strings.TrimSpace(fields["signed-by"]); sb != "" {
			if strings.Contains(sb, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
				s.SignedBy = []string{sb}
			} else {
				s.SignedBy = strings.FieldsFunc(sb, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
			}
		}
		out = append(out, s)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(text, "#") {
			continue
		}
		if strings.TrimSpace(text) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			start = line + 1
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if key == "" {
				return nil, fmt.Errorf("%s:%d: %w: continuation line without a field", name, line, ErrMalformed)
			}
			v := strings.TrimSpace(text)
			if v == "." {
				v = ""
			}
			fields[key] += "\n" + v
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %w: %q is not a field", name, line, ErrMalformed, text)
		}
		key = strings.ToLower(strings.TrimSpace(k))
		fields[key] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func withSlash(u string) string {
	if !strings.HasSuffix(u, "/") {
		return u + "/"
	}
	return u
}

// Match returns the source whose URI and suite the distribution URL
// (…/dists/<suite>/) belongs to, ignoring the scheme's case.
func Match(sources []Source, distURL string) (Source, bool) {
	for _, s := range sources {
		for _, u := range s.URIs {
			if !strings.HasPrefix(strings.ToLower(distURL), strings.ToLower(u)) {
				continue
			}
			rest := strings.TrimSuffix(distURL[len(u):], "/")
			for _, suite := range s.Suites {
				if rest == "dists/"+strings.TrimSuffix(suite, "/") {
					return s, true
				}
			}
		}
	}
	return Source{}, false
}
