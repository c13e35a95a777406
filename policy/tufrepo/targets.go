package tufrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/internal/targetname"
)

// Target is one signed target as listed by ListTargets.
type Target struct {
	Name   string          `json:"name"`
	Length int64           `json:"length"`
	SHA256 string          `json:"sha256"`
	Custom json.RawMessage `json:"custom,omitempty"`
	// Catalog is the parsed custom metadata of a catalog target.
	Catalog *CatalogMeta `json:"catalog,omitempty"`
}

// CatalogMeta is the custom metadata of a catalog payload target
// (catalog/<package>/<version>/<file>). It is the wire contract with agents.
type CatalogMeta struct {
	Package        string   `json:"package"`
	Version        string   `json:"version"`
	AppliesTo      []string `json:"applies_to,omitempty"`
	Reboot         bool     `json:"reboot"`
	Severity       string   `json:"severity,omitempty"`
	Classification string   `json:"classification,omitempty"`
	CVEs           []string `json:"cves,omitempty"`
	// Format is the payload's package format: "deb" (apt installs it) or
	// "rpm" (dnf does); agents of the other package manager leave it
	// alone. Empty in entries published before formats were recorded.
	Format string `json:"format,omitempty"`
	// Arch is the package's architecture as its header says (rpm's or
	// dpkg's name; noarch and all fit every node). Empty when unknown.
	Arch string `json:"arch,omitempty"`
}

// Payload formats of catalog entries (CatalogMeta.Format).
const (
	FormatDeb = "deb"
	FormatRPM = "rpm"
)

// Severities lists the accepted CatalogMeta.Severity values.
var Severities = []string{"low", "medium", "moderate", "high", "important", "critical"}

var (
	packageRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	versionRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~:_-]*$`)
	classificationRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	cveRE            = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)
	archRE           = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
)

// Validate reports every problem with m at once.
func (m CatalogMeta) Validate() error {
	var errs []error
	if !packageRE.MatchString(m.Package) || len(m.Package) > 128 {
		errs = append(errs, fmt.Errorf("package %q: use letters, digits and ._+- (starting with a letter or digit, at most 128)", m.Package))
	}
	if !versionRE.MatchString(m.Version) || len(m.Version) > 128 {
		errs = append(errs, fmt.Errorf("version %q: use letters, digits and .+~:_- (starting with a letter or digit, at most 128)", m.Version))
	}
	if m.Severity != "" && !slices.Contains(Severities, m.Severity) {
		errs = append(errs, fmt.Errorf("severity %q: use one of %s", m.Severity, strings.Join(Severities, ", ")))
	}
	if m.Classification != "" && !classificationRE.MatchString(m.Classification) {
		errs = append(errs, fmt.Errorf("classification %q: use a lowercase word such as security or bugfix", m.Classification))
	}
	for i, c := range m.CVEs {
		if !cveRE.MatchString(c) {
			errs = append(errs, fmt.Errorf("cves[%d] %q: use the form CVE-2024-12345", i, c))
		}
	}
	if m.Format != "" && m.Format != FormatDeb && m.Format != FormatRPM {
		errs = append(errs, fmt.Errorf("format %q: use %s or %s", m.Format, FormatDeb, FormatRPM))
	}
	if m.Arch != "" && !archRE.MatchString(m.Arch) {
		errs = append(errs, fmt.Errorf("arch %q: use a dpkg or rpm architecture such as amd64, x86_64 or noarch", m.Arch))
	}
	for i, a := range m.AppliesTo {
		if a == "" || len(a) > 256 || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("applies_to[%d] %q: must be 1 to 256 printable characters", i, a))
		}
	}
	return errors.Join(errs...)
}

// CatalogTargetName returns the target name of a catalog payload:
// catalog/<package>/<version>/<file>. A Debian epoch colon in the version
// becomes "_" in the path (the exact version is in the custom metadata).
func CatalogTargetName(pkg, version, file string) string {
	return CatalogPrefix + pkg + "/" + strings.ReplaceAll(version, ":", "_") + "/" + file
}

// payloadPath is where a target's bytes live in the repository:
// targets/<dir>/<sha256>.<base> (consistent snapshot naming).
func (r *Repo) payloadPath(name, sha string) string {
	dir, base := path.Split(name)
	return filepath.Join(r.dir, targetsDir, filepath.FromSlash(dir), sha+"."+base)
}

func checkCustom(custom json.RawMessage) (*json.RawMessage, error) {
	if len(custom) == 0 {
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(custom, &obj); err != nil {
		return nil, fmt.Errorf("custom metadata must be a JSON object: %w", err)
	}
	c := slices.Clone(custom)
	rm := json.RawMessage(c)
	return &rm, nil
}

// AddTarget stages a target with the given bytes and custom metadata (a
// JSON object, or nil). The payload file is written at once; metadata is
// signed by the next Publish.
func (r *Repo) AddTarget(name string, data []byte, custom json.RawMessage) error {
	if err := targetname.Check(name); err != nil {
		return fmt.Errorf("add target: %w", err)
	}
	cm, err := checkCustom(custom)
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	tf.Custom = cm
	dst := r.payloadPath(name, hex.EncodeToString(tf.Hashes["sha256"]))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	r.targets.Signed.Targets[name] = tf
	r.dirty = true
	return nil
}

// AddTargetFile stages the file at src as target name, streaming it (never
// whole in memory) into the repository.
func (r *Repo) AddTargetFile(name, src string, custom json.RawMessage) error {
	if err := targetname.Check(name); err != nil {
		return fmt.Errorf("add target: %w", err)
	}
	cm, err := checkCustom(custom)
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("add target %s: %s is not a regular file", name, src)
	}
	dir, base := path.Split(name)
	outDir := filepath.Join(r.dir, targetsDir, filepath.FromSlash(dir))
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(outDir, ".tmp-"+base+"-*")
	if err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err != nil {
		return fmt.Errorf("add target %s: copy %s: %w", name, src, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	sum := h.Sum(nil)
	if err := os.Rename(tmp.Name(), r.payloadPath(name, hex.EncodeToString(sum))); err != nil {
		return fmt.Errorf("add target %s: %w", name, err)
	}
	done = true
	if err := atomicfile.SyncDir(outDir); err != nil {
		return err
	}
	r.targets.Signed.Targets[name] = &metadata.TargetFiles{
		Length: n,
		Hashes: metadata.Hashes{"sha256": sum},
		Custom: cm,
		Path:   name,
	}
	r.dirty = true
	return nil
}

// AddCatalogFile validates meta and stages the file at src as the catalog
// target catalog/<package>/<version>/<base name of src>. It returns the
// target name.
func (r *Repo) AddCatalogFile(src string, meta CatalogMeta) (string, error) {
	if err := meta.Validate(); err != nil {
		return "", fmt.Errorf("add catalog entry %s: %w", src, err)
	}
	name := CatalogTargetName(meta.Package, meta.Version, filepath.Base(src))
	custom, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	if err := r.AddTargetFile(name, src, custom); err != nil {
		return "", fmt.Errorf("add catalog entry: %w", err)
	}
	return name, nil
}

// RemoveTarget stages the removal of a target. Its payload file is deleted
// by the next Publish.
func (r *Repo) RemoveTarget(name string) error {
	if _, ok := r.targets.Signed.Targets[name]; !ok {
		return fmt.Errorf("remove target: %w: %q", ErrNoSuchTarget, name)
	}
	delete(r.targets.Signed.Targets, name)
	r.dirty = true
	return nil
}

// ListTargets returns the staged targets (the published ones unless changed
// since), sorted by name.
func (r *Repo) ListTargets() []Target {
	out := make([]Target, 0, len(r.targets.Signed.Targets))
	for name, tf := range r.targets.Signed.Targets {
		t := Target{Name: name, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		if tf.Custom != nil {
			t.Custom = slices.Clone(*tf.Custom)
			if strings.HasPrefix(name, CatalogPrefix) {
				var m CatalogMeta
				if json.Unmarshal(*tf.Custom, &m) == nil {
					t.Catalog = &m
				}
			}
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PublishPolicy stores canonicalJSON as the target policy.json and
// publishes new targets, snapshot and timestamp versions. It returns the
// targets version that carries the policy.
func (r *Repo) PublishPolicy(canonicalJSON []byte) (int64, error) {
	if !json.Valid(canonicalJSON) {
		return 0, errors.New("publish policy: document is not valid JSON")
	}
	if err := r.Unlock(); err != nil {
		return 0, fmt.Errorf("publish policy: %w", err)
	}
	if err := r.AddTarget(PolicyTarget, canonicalJSON, nil); err != nil {
		return 0, fmt.Errorf("publish policy: %w", err)
	}
	v, err := r.Publish()
	if err != nil {
		return 0, fmt.Errorf("publish policy: %w", err)
	}
	return v.Targets, nil
}

// unreferencedPayloads lists payload files of published targets that the
// staged targets no longer reference.
func (r *Repo) unreferencedPayloads() []string {
	published, err := (&metadata.Metadata[metadata.TargetsType]{}).FromFile(r.metaPath("targets.json"))
	if err != nil {
		return nil
	}
	keep := map[string]bool{}
	for name, tf := range r.targets.Signed.Targets {
		keep[r.payloadPath(name, hex.EncodeToString(tf.Hashes["sha256"]))] = true
	}
	var out []string
	for name, tf := range published.Signed.Targets {
		p := r.payloadPath(name, hex.EncodeToString(tf.Hashes["sha256"]))
		if !keep[p] {
			out = append(out, p)
		}
	}
	return out
}

// removePayloads deletes payload files, best effort: a leftover payload is
// unreferenced and harmless.
func (r *Repo) removePayloads(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
