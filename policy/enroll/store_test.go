package enroll

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// TestStoreConcurrentWriters: two stores on one directory (as ca serve and
// enroll-token create are) lose no token.
func TestStoreConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			id, secret, err := NewTokenSecret()
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Add(TokenRecord{ID: id, SecretHash: HashSecret(secret), Fleet: "f", Site: "s", Uses: 1, UsesLeft: 1, Expires: time.Now().Add(time.Hour)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := b.Tokens()
	if err != nil || len(recs) != 40 {
		t.Fatalf("%d tokens, %v", len(recs), err)
	}
	if err := a.Delete(recs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(recs[0].ID); !errors.Is(err, ErrNoToken) {
		t.Fatalf("second delete: %v", err)
	}
	raw, _ := os.ReadFile(a.Path())
	if bytes.Contains(raw, []byte(`"secret"`)) {
		t.Fatal("store holds a secret")
	}
	os.WriteFile(a.Path(), []byte("{not json"), 0o600)
	if _, err := a.Tokens(); err == nil {
		t.Fatal("a corrupt store was read")
	}
}
