package enroll

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestOriginFleet: the service's fleet document from the origin, verified
// through TUF, follows a revocation once its cache is older than maxAge.
func TestOriginFleet(t *testing.T) {
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	r, err := tufrepo.Init(repoDir, filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitFleet(); err != nil {
		t.Fatal(err)
	}
	root, _ := r.RootJSON()
	origin := httptest.NewServer(tufrepo.Handler(repoDir))
	t.Cleanup(origin.Close)
	of, err := NewOriginFleet(origin.URL, root, filepath.Join(base, "svc"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := of.Fleet(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	if _, revoked := tr.Revoked(n.id); revoked || len(tr.Document().CA) != 1 {
		t.Fatalf("first document %+v", tr.Document())
	}
	if _, err := r.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: n.id, Reason: "test", At: time.Now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tr, _ = of.Fleet(context.Background()); tr == nil {
		t.Fatal("no document")
	}
	if _, revoked := tr.Revoked(n.id); revoked {
		t.Fatal("cache younger than maxAge was refreshed")
	}
	of.maxAge = 0
	if tr, err = of.Fleet(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, revoked := tr.Revoked(n.id); !revoked {
		t.Fatal("revocation not seen after the cache expired")
	}
	// A tampered origin is refused, not trusted.
	bad, err := NewOriginFleet(origin.URL, testRoot(t), filepath.Join(base, "other"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Fleet(context.Background()); err == nil {
		t.Fatal("fleet document verified with another fleet's root")
	}
}
