package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/patchring/patchring/daemon/store"
)

// Kind is what a transaction does.
type Kind string

const (
	KindInstall  Kind = "install"
	KindRollback Kind = "rollback"
)

// Outcome is how a transaction ended; empty while it is open.
type Outcome string

const (
	OutcomeInstalled  Outcome = "installed"   // the new versions are in place and healthy
	OutcomeRolledBack Outcome = "rolled-back" // the previous versions were put back
	OutcomeFailed     Outcome = "failed"      // nothing could be installed; the system is as before
	OutcomeAborted    Outcome = "aborted"     // stopped before anything changed
)

// Step names, in the order an install takes them. Every step is written
// to the journal before it is taken.
const (
	StepPlanned  = "planned"
	StepFetch    = "fetch"
	StepPlace    = "place"
	StepInstall  = "install"
	StepVerify   = "verify"
	StepHealth   = "health-check"
	StepRestart  = "restart-services"
	StepRollback = "rollback"
	// StepRestartBack restarts, after a rollback, the services running
	// code the rollback replaced.
	StepRestartBack = "restart-after-rollback"
	StepRecover     = "recover"
	StepCompleted   = "completed"
)

// InstallSteps are the journaled steps of an install, for crash tests.
var InstallSteps = []string{StepPlanned, StepFetch, StepPlace, StepInstall, StepVerify, StepHealth}

// RestartCrashPoints are the crash points of the restart steps (after an
// install, and after a rollback), for crash tests of an engine with
// Config.Services: each step's start, and after its restarts.
var RestartCrashPoints = []string{StepRestart, CrashAfterRestart, StepRestartBack, CrashAfterRestartBack}

// Item is one package a transaction changes.
type Item struct {
	Source  string `json:"source"` // apt or catalog
	Package string `json:"package"`
	Arch    string `json:"arch,omitempty"`
	From    string `json:"from"` // version before ("" when not installed)
	To      string `json:"to"`   // version after
	// Payload of To, and of From for a rollback, as verified hashes.
	Payload     *Payload `json:"payload,omitempty"`
	FromPayload *Payload `json:"from_payload,omitempty"`
	// Action is what the transaction does to the package (ActionUpgrade,
	// ActionInstall, ActionRemove, ActionDowngrade); empty in journals
	// written before whole transactions.
	Action string `json:"action,omitempty"`
	// Requested is true for the updates the policy (or an admin) asked
	// for; the others are what apt's solver added.
	Requested bool `json:"requested,omitempty"`
	// Result is where the package ended when the transaction ended
	// (ResultInstalled, ResultRemoved, ResultRestored, ResultUnchanged,
	// ResultStuck) and Now its version then ("" when not installed).
	Result string `json:"result,omitempty"`
	Now    string `json:"now,omitempty"`
}

// Item actions.
const (
	ActionUpgrade   = "upgrade"
	ActionDowngrade = "downgrade"
	ActionInstall   = "install" // a package the transaction adds
	ActionRemove    = "remove"
)

// Per-package results.
const (
	ResultInstalled = "installed" // at To
	ResultRemoved   = "removed"   // removed as planned
	ResultRestored  = "restored"  // back at From after a rollback
	ResultUnchanged = "unchanged" // never changed (the transaction stopped before)
	ResultStuck     = "stuck"     // neither at From nor at To: see Now
)

// Payload is a verified package file: where it came from and its hash from
// signed metadata (TUF) or from the indices apt verified.
type Payload struct {
	URI    string `json:"uri"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path,omitempty"` // in the content store, once verified
}

// Step is one journal entry of a transaction.
type Step struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Status string    `json:"status"` // "started", "done", "failed"
	Detail string    `json:"detail,omitempty"`
}

// Tx is one journaled install or rollback.
type Tx struct {
	ID       uint64    `json:"id"`
	Kind     Kind      `json:"kind"`
	Items    []Item    `json:"items"`
	Reason   string    `json:"reason"` // the policy decision or admin action behind it
	Policy   string    `json:"policy_version,omitempty"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	Outcome  Outcome   `json:"outcome,omitempty"`
	Error    string    `json:"error,omitempty"`
	Steps    []Step    `json:"steps"`
	RolledBy uint64    `json:"rolled_back_by,omitempty"` // the rollback transaction that undid it
	Reboot   bool      `json:"reboot_required,omitempty"`
	// Batch is the batch transaction whose failure this one isolates a
	// part of (its dependency component), 0 otherwise.
	Batch uint64 `json:"batch,omitempty"`
	// RollbackFailed is set when the rollback of this transaction failed
	// and the node was settled instead (see the items' results).
	RollbackFailed bool `json:"rollback_failed,omitempty"`
	// SelfDeadline is when a self-update's new agent must be healthy by
	// (set when its health step begins).
	SelfDeadline time.Time `json:"self_health_deadline,omitzero"`
	// Restarts are the services the restart step restarted (or failed
	// to), and Stale the processes it left running replaced code.
	Restarts []ServiceRestart `json:"restarts,omitempty"`
	Stale    []StaleProcess   `json:"stale,omitempty"`
	// RollbackRestarts are the services restarted onto the previous
	// versions after a rollback (StepRestartBack).
	RollbackRestarts []ServiceRestart `json:"rollback_restarts,omitempty"`
	// RebootReasons say why the install left a reboot required.
	RebootReasons []string `json:"reboot_reasons,omitempty"`
	// UrgentRebootDeadline is the reboot deadline of the urgent rule that
	// approved an update of the transaction (the shortest of several), and
	// UrgentRule names the rule and the update; the restart the install
	// needs is due within it.
	UrgentRebootDeadline time.Duration `json:"urgent_reboot_deadline,omitempty"`
	UrgentRule           string        `json:"urgent_rule,omitempty"`

	before map[string]string // installed packages before the install step (not journaled)
	// oldFiles are the files of the changed packages' previous versions,
	// listed before the install step (not journaled: after a crash the
	// restart step counts the new versions' files only).
	oldFiles []string
}

// whole reports whether the transaction was planned with apt's solver
// (every change journaled) rather than as one catalog file.
func (t *Tx) whole() bool {
	for _, it := range t.Items {
		if it.Action == "" || it.Source == "catalog" {
			return false
		}
	}
	return len(t.Items) > 0
}

// Open reports whether the transaction has not ended.
func (t *Tx) Open() bool { return t.Outcome == "" }

// LastStep is the most recent journal entry.
func (t *Tx) LastStep() Step {
	if len(t.Steps) == 0 {
		return Step{}
	}
	return t.Steps[len(t.Steps)-1]
}

// reached reports whether the journal shows step name was started.
func (t *Tx) reached(name string) bool {
	for _, s := range t.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}

func txKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// journal persists transactions in the state store.
type journal struct {
	db  *store.DB
	now func() time.Time
	// gen counts the writes: readers that derive something from the
	// whole history redo it only when gen moved.
	gen atomic.Uint64
}

func (j *journal) create(kind Kind, items []Item, reason, policyVersion string) (*Tx, error) {
	return j.createBatch(kind, items, reason, policyVersion, 0)
}

func (j *journal) createBatch(kind Kind, items []Item, reason, policyVersion string, batch uint64) (*Tx, error) {
	tx := &Tx{Kind: kind, Items: items, Reason: reason, Policy: policyVersion, Started: j.now(), Batch: batch}
	err := j.db.Update(func(btx *bolt.Tx) error {
		id, err := store.Sequence(btx, store.BucketJournal)
		if err != nil {
			return err
		}
		tx.ID = id
		tx.Steps = []Step{{Name: StepPlanned, At: tx.Started, Status: "done", Detail: reason}}
		return store.PutTx(btx, store.BucketJournal, txKey(id), tx)
	})
	j.gen.Add(1)
	if err != nil {
		return nil, fmt.Errorf("journal: create transaction: %w", err)
	}
	crashPoint(StepPlanned)
	return tx, nil
}

// begin records that step is about to be taken. It is durable (fsynced)
// before it returns.
func (j *journal) begin(tx *Tx, step, detail string) error {
	tx.Steps = append(tx.Steps, Step{Name: step, At: j.now(), Status: "started", Detail: detail})
	if err := j.save(tx); err != nil {
		return err
	}
	crashPoint(step)
	return nil
}

// finish marks the last step done or failed.
func (j *journal) finish(tx *Tx, err error, detail string) error {
	last := &tx.Steps[len(tx.Steps)-1]
	last.Status = "done"
	if err != nil {
		last.Status = "failed"
		detail = err.Error()
	}
	switch {
	case detail == "":
	case last.Detail == "":
		last.Detail = detail
	default:
		last.Detail += "; " + detail
	}
	return j.save(tx)
}

// end closes the transaction with its outcome.
func (j *journal) end(tx *Tx, o Outcome, cause error) error {
	tx.Outcome = o
	tx.Ended = j.now()
	if cause != nil {
		tx.Error = cause.Error()
	}
	tx.Steps = append(tx.Steps, Step{Name: StepCompleted, At: tx.Ended, Status: "done", Detail: string(o)})
	return j.save(tx)
}

func (j *journal) save(tx *Tx) error {
	defer j.gen.Add(1) // also after a failed write: it may have half-happened
	if err := j.db.Put(store.BucketJournal, txKey(tx.ID), tx); err != nil {
		return fmt.Errorf("journal: save transaction %d: %w", tx.ID, err)
	}
	return nil
}

func (j *journal) get(id uint64) (*Tx, error) {
	var tx Tx
	if err := j.db.Get(store.BucketJournal, txKey(id), &tx); err != nil {
		return nil, err
	}
	return &tx, nil
}

// list returns transactions newest first (all when limit is 0).
func (j *journal) list(limit int) ([]*Tx, error) {
	var out []*Tx
	err := j.db.View(func(btx *bolt.Tx) error {
		c := btx.Bucket(store.BucketJournal).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var t Tx
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("journal record %x: %w", k, err)
			}
			out = append(out, &t)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}
