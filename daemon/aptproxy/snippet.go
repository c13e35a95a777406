package aptproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/patchring/patchring/internal/atomicfile"
)

// SnippetMarker is the first line of the apt.conf.d snippet the agent
// writes; the agent removes only a file that starts with it.
const SnippetMarker = "// patchring apt proxy: written by patchringd, removed when the proxy is disabled."

// SnippetName is the snippet's file name in apt.conf.d.
const SnippetName = "80patchring-proxy"

// Snippet is the apt configuration that sends apt's http downloads through
// the proxy at proxyURL. PDiffs are off: a PDiff is a patch against the
// node's own previous index, so each node would need another chain of
// small files fetched one by one; with by-hash each changed index is one
// content-addressed file the whole site shares, which costs the site's
// WAN one copy of it (docs/APT.md). https sources are not affected (apt
// uses Acquire::https::Proxy for them). extra is appended: the proxy's
// PinnedAptConf on an offline site.
func Snippet(proxyURL string, extra ...string) []byte {
	b := fmt.Appendf(nil, `%s
Acquire::http::Proxy "%s";
Acquire::PDiffs "false";
Acquire::By-Hash "yes";
`, SnippetMarker, proxyURL)
	for _, e := range extra {
		b = append(b, e...)
	}
	return b
}

// WriteSnippet writes the snippet to path (e.g.
// /etc/apt/apt.conf.d/80patchring-proxy) atomically. A file there that the
// agent did not write is not replaced.
func WriteSnippet(path, proxyURL string, extra ...string) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && !bytes.HasPrefix(old, []byte(SnippetMarker)):
		return fmt.Errorf("write apt proxy snippet: %s exists and was not written by patchringd; leaving it", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("write apt proxy snippet: %w", err)
	}
	if err := atomicfile.WriteFile(path, Snippet(proxyURL, extra...), 0o644); err != nil {
		return fmt.Errorf("write apt proxy snippet: %w", err)
	}
	return nil
}

// RemoveSnippet removes the snippet at path if the agent wrote it.
func RemoveSnippet(path string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove apt proxy snippet: %w", err)
	}
	if !bytes.HasPrefix(old, []byte(SnippetMarker)) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove apt proxy snippet: %w", err)
	}
	return nil
}
