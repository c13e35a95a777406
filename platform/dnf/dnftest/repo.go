package dnftest

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Advisory is an updateinfo.xml entry.
type Advisory struct {
	ID       string // e.g. "FEDORA-2026-0001"
	Type     string // security, bugfix, enhancement, newpackage
	Severity string // Critical, Important, Moderate, Low, or ""
	Title    string
	Issued   time.Time
	CVEs     []string
	Packages []Package // the fixed package versions
}

// RepoConfig configures StartRepo.
type RepoConfig struct {
	// Signer signs repomd.xml (repomd.xml.asc) and every package added;
	// nil publishes an unsigned repository.
	Signer *Signer
}

// Repo is a dnf repository made with createrepo_c and served over HTTP on
// 127.0.0.1. Add packages, set advisories, then Publish.
type Repo struct {
	cfg RepoConfig
	dir string
	srv *http.Server
	ln  net.Listener
	url string

	mu         sync.Mutex
	override   map[string][]byte
	requests   []string
	advisories []Advisory
	served     sync.WaitGroup
}

// StartRepo creates an empty repository and serves it.
func StartRepo(cfg RepoConfig) (*Repo, error) {
	for _, tool := range []string{"createrepo_c", "modifyrepo_c"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start repo: %s not found (Debian package createrepo-c): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "dnftest-repo-")
	if err != nil {
		return nil, fmt.Errorf("start repo: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start repo: %w", err)
	}
	r := &Repo{cfg: cfg, dir: dir, ln: ln, url: "http://" + ln.Addr().String() + "/", override: map[string][]byte{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	r.served.Add(1)
	go func() { defer r.served.Done(); _ = r.srv.Serve(ln) }()
	if err := r.Publish(context.Background()); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// MustStartRepo is StartRepo for tests; the repository stops at cleanup.
func MustStartRepo(t TB, cfg RepoConfig) *Repo {
	t.Helper()
	r, err := StartRepo(cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// URL is the repository's baseurl.
func (r *Repo) URL() string { return r.url }

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// Add copies packages into the repository (signing the copies when the
// repository has a Signer) and publishes the metadata again.
func (r *Repo) Add(ctx context.Context, rpms ...string) error {
	var copies []string
	for _, src := range rpms {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("repo add: %w", err)
		}
		dst := filepath.Join(r.dir, "Packages", filepath.Base(src))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("repo add: %w", err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("repo add: %w", err)
		}
		copies = append(copies, dst)
	}
	if r.cfg.Signer != nil {
		if err := r.cfg.Signer.SignRPMs(ctx, copies...); err != nil {
			return fmt.Errorf("repo add: %w", err)
		}
	}
	return r.Publish(ctx)
}

// MustAdd is Add for tests.
func (r *Repo) MustAdd(t TB, rpms ...string) {
	t.Helper()
	if err := r.Add(context.Background(), rpms...); err != nil {
		t.Fatalf("%v", err)
	}
}

// Remove deletes a package file (by its file name) and publishes again.
func (r *Repo) Remove(ctx context.Context, fileName string) error {
	if err := os.Remove(filepath.Join(r.dir, "Packages", filepath.Base(fileName))); err != nil {
		return fmt.Errorf("repo remove: %w", err)
	}
	return r.Publish(ctx)
}

// SetAdvisories replaces the repository's updateinfo.xml and publishes.
func (r *Repo) SetAdvisories(ctx context.Context, advs ...Advisory) error {
	r.mu.Lock()
	r.advisories = advs
	r.mu.Unlock()
	return r.Publish(ctx)
}

// PackagePath is the path of a package file in the repository.
func (r *Repo) PackagePath(fileName string) string {
	return filepath.Join(r.dir, "Packages", filepath.Base(fileName))
}

// Publish runs createrepo_c, adds updateinfo.xml with modifyrepo_c when
// there are advisories, and signs repomd.xml.
func (r *Repo) Publish(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %v: %w: %s", name, args, err, out.String())
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "Packages"), 0o755); err != nil {
		return fmt.Errorf("publish repo: %w", err)
	}
	if err := run("createrepo_c", "--quiet", "--no-database", "--simple-md-filenames=false", r.dir); err != nil {
		return fmt.Errorf("publish repo: %w", err)
	}
	repodata := filepath.Join(r.dir, "repodata")
	if len(r.advisories) > 0 {
		ui := filepath.Join(r.dir, "updateinfo.xml")
		if err := os.WriteFile(ui, UpdateinfoXML(r.advisories...), 0o644); err != nil {
			return fmt.Errorf("publish repo: %w", err)
		}
		defer os.Remove(ui)
		if err := run("modifyrepo_c", "--mdtype=updateinfo", ui, repodata); err != nil {
			return fmt.Errorf("publish repo: %w", err)
		}
	}
	repomd := filepath.Join(repodata, "repomd.xml")
	os.Remove(repomd + ".asc")
	if r.cfg.Signer != nil {
		if err := r.cfg.Signer.DetachSign(repomd); err != nil {
			return fmt.Errorf("publish repo: %w", err)
		}
	}
	return nil
}

// UpdateinfoXML renders advisories as updateinfo.xml.
func UpdateinfoXML(advs ...Advisory) []byte {
	type ref struct {
		Href  string `xml:"href,attr"`
		ID    string `xml:"id,attr"`
		Type  string `xml:"type,attr"`
		Title string `xml:"title,attr"`
	}
	type pkg struct {
		Name     string `xml:"name,attr"`
		Version  string `xml:"version,attr"`
		Release  string `xml:"release,attr"`
		Epoch    string `xml:"epoch,attr"`
		Arch     string `xml:"arch,attr"`
		Src      string `xml:"src,attr"`
		Filename string `xml:"filename"`
	}
	type update struct {
		From     string `xml:"from,attr"`
		Status   string `xml:"status,attr"`
		Type     string `xml:"type,attr"`
		Version  string `xml:"version,attr"`
		ID       string `xml:"id"`
		Title    string `xml:"title"`
		Severity string `xml:"severity,omitempty"`
		Issued   struct {
			Date string `xml:"date,attr"`
		} `xml:"issued"`
		Description string `xml:"description"`
		References  struct {
			Refs []ref `xml:"reference"`
		} `xml:"references"`
		Pkglist struct {
			Collection struct {
				Short string `xml:"short,attr"`
				Name  string `xml:"name"`
				Pkgs  []pkg  `xml:"package"`
			} `xml:"collection"`
		} `xml:"pkglist"`
	}
	var doc struct {
		XMLName xml.Name `xml:"updates"`
		Updates []update `xml:"update"`
	}
	for _, a := range advs {
		u := update{From: "tests@patchring.invalid", Status: "stable", Type: a.Type, Version: "1", ID: a.ID, Title: a.Title, Severity: a.Severity, Description: a.Title}
		issued := a.Issued
		if issued.IsZero() {
			issued = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		u.Issued.Date = issued.UTC().Format("2006-01-02 15:04:05")
		for _, c := range a.CVEs {
			u.References.Refs = append(u.References.Refs, ref{Href: "https://www.cve.org/CVERecord?id=" + c, ID: c, Type: "cve", Title: c})
		}
		u.Pkglist.Collection.Short = "patchring-tests"
		u.Pkglist.Collection.Name = "patchring tests"
		for _, p := range a.Packages {
			epoch := p.Epoch
			if epoch == "" {
				epoch = "0"
			}
			u.Pkglist.Collection.Pkgs = append(u.Pkglist.Collection.Pkgs, pkg{Name: p.Name, Version: p.Version, Release: p.release(),
				Epoch: epoch, Arch: p.arch(), Src: p.Name + "-" + p.Version + "-" + p.release() + ".src.rpm", Filename: p.FileName()})
		}
		doc.Updates = append(doc.Updates, u)
	}
	out, _ := xml.MarshalIndent(doc, "", "  ")
	return append([]byte(xml.Header), append(out, '\n')...)
}

// ReadFile returns a file of the repository as served.
func (r *Repo) ReadFile(rel string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.override[path.Clean("/"+rel)]; ok {
		return b, nil
	}
	return os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(rel)))
}

// Override serves data at rel instead of the file (nil stops overriding):
// a tampered package or repomd.xml.
func (r *Repo) Override(rel string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := path.Clean("/" + rel)
	if data == nil {
		delete(r.override, k)
		return
	}
	r.override[k] = data
}

// Requests lists the paths served so far.
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Handler serves the repository as its own server does (overrides and
// the request log included), for a test that serves it at another
// address too (e.g. inside a network namespace; see RepoOptions.BaseURL).
func (r *Repo) Handler() http.Handler { return http.HandlerFunc(r.serve) }

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	p := path.Clean("/" + req.URL.Path)
	r.mu.Lock()
	r.requests = append(r.requests, p)
	data, over := r.override[p]
	r.mu.Unlock()
	if over {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = io.Copy(w, bytes.NewReader(data))
		return
	}
	if strings.Contains(p, "..") {
		http.NotFound(w, req)
		return
	}
	http.ServeFile(w, req, filepath.Join(r.dir, filepath.FromSlash(p)))
}

// Close stops serving and removes the repository.
func (r *Repo) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	r.served.Wait()
	if rmErr := os.RemoveAll(r.dir); err == nil {
		err = rmErr
	}
	return err
}
