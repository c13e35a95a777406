package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil"
)

// TestSQLiteGroupCommit holds the writer in its first transaction while
// more batches arrive, and checks that those are stored together in one
// transaction with each caller getting its own results, duplicates and
// conflicts across callers included, and that a failing transaction is
// retried call by call so that only the call it came from sees the error.
func TestSQLiteGroupCommit(t *testing.T) {
	s, err := OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var (
		mu   sync.Mutex
		txs  [][]Entry // the entries of each transaction begun
		gate = make(chan struct{})
	)
	poison := newNode(999)
	s.ingestFault = func(es []Entry) error {
		mu.Lock()
		first := len(txs) == 0
		txs = append(txs, es)
		mu.Unlock()
		if first {
			<-gate
		}
		for _, e := range es {
			if e.Record.Node == poison.id {
				return errors.New("injected database failure")
			}
		}
		return nil
	}

	a, b, c := newNode(1), newNode(2), newNode(3)
	calls := [][]Entry{
		{entry(t, a, a.record(1, nil))}, // the first transaction, held
		{entry(t, b, b.record(1, nil)), entry(t, c, c.record(1, nil))},
		{entry(t, b, b.record(1, nil))},                                           // b's record again: a duplicate
		{entry(t, c, c.record(1, func(r *report.Record) { r.State = "failed" }))}, // c's seq 1 with other content
		{entry(t, poison, poison.record(1, nil))},
	}
	type out struct {
		res  []Result
		errs []error
		err  error
	}
	outs := make([]out, len(calls))
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Go(func() {
			res, errs, err := s.IngestBatch(t.Context(), calls[i])
			outs[i] = out{res, errs, err}
		})
	}
	start(0)
	testutil.WaitFor(t, 10*time.Second, "the first transaction begins", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(txs) == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	// Queued in this order while the writer is held.
	for i := 1; i < len(calls); i++ {
		start(i)
		testutil.WaitFor(t, 10*time.Second, "the call is queued", func() error {
			s.group.mu.Lock()
			defer s.group.mu.Unlock()
			if len(s.group.queue) != i {
				return errors.New("not yet")
			}
			return nil
		})
	}
	close(gate)
	wg.Wait()

	// One held transaction, one for the four queued calls together (which
	// fails for the poisoned one), then one per call.
	if len(txs) != 2+4 || len(txs[1]) != 5 {
		sizes := []int{}
		for _, es := range txs {
			sizes = append(sizes, len(es))
		}
		t.Fatalf("transactions of %v records, want [1 5 2 1 1 1]", sizes)
	}
	want := []struct {
		res []Result
		err []error
	}{
		{[]Result{Stored}, []error{nil}},
		{[]Result{Stored, Stored}, []error{nil, nil}},
		{[]Result{Duplicate}, []error{nil}},
		{[]Result{0}, []error{ErrConflict}},
	}
	for i, w := range want {
		o := outs[i]
		if o.err != nil || len(o.res) != len(w.res) {
			t.Fatalf("call %d: %v %v %v", i, o.res, o.errs, o.err)
		}
		for j := range w.res {
			if !errors.Is(o.errs[j], w.err[j]) || (w.err[j] == nil && o.res[j] != w.res[j]) {
				t.Errorf("call %d, entry %d: %v %v, want %v %v", i, j, o.res[j], o.errs[j], w.res[j], w.err[j])
			}
		}
	}
	if o := outs[4]; o.err == nil || o.res != nil {
		t.Errorf("poisoned call: %v %v, want its transaction's error", o.res, o.err)
	}
	if c := counts(t, s); c.Nodes != 3 || c.Records != 3 {
		t.Fatalf("counts %+v, want 3 nodes and 3 records", c)
	}

	// With the writer idle, a call is written at once, alone.
	mu.Lock()
	txs = txs[:0:0]
	mu.Unlock()
	d := newNode(4)
	if res, errs := ingest(t, s, entry(t, d, d.record(1, nil))); res[0] != Stored || errs[0] != nil {
		t.Fatalf("lone call: %v %v", res, errs)
	}
	if len(txs) != 1 {
		t.Fatalf("lone call took %d transactions", len(txs))
	}
}
