package tufrepo

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/advisory"
)

// Advisory database targets: the full database, and deltas from each of
// the last AdvisoryKeepDeltas versions to the current one (cumulative, so
// an agent a few days behind still downloads one small file).
const (
	AdvisoryDBTarget    = "advisories/db.json.gz"
	AdvisoryDeltaPrefix = "advisories/delta-from-"
	AdvisoryKeepDeltas  = 7
	// advisoryHistoryDir keeps the published databases the next deltas
	// start from (public data, like the targets; not itself a target).
	advisoryHistoryDir = "advisories-history"
)

// ErrNoAdvisories means the repository publishes no advisory database.
var ErrNoAdvisories = errors.New("repository has no advisory database (run patchring advisories import)")

// AdvisoryDeltaTarget is the name of the delta from version from to the
// current database.
func AdvisoryDeltaTarget(from int64) string {
	return AdvisoryDeltaPrefix + strconv.FormatInt(from, 10) + ".json.gz"
}

// AdvisoryMeta is the custom metadata of the advisory targets.
type AdvisoryMeta struct {
	Version int64 `json:"version"`
	// From is the base version of a delta (0 for the full database).
	From int64 `json:"from,omitempty"`
	// JSONSHA256 is the SHA-256 of the database's canonical JSON.
	JSONSHA256 string `json:"json_sha256"`
	Entries    int    `json:"entries"`
}

// AdvisoryDB returns the published advisory database, checked against the
// signed length and hashes. Errors wrap ErrNoAdvisories when there is none.
func (r *Repo) AdvisoryDB() (*advisory.DB, error) {
	tf, ok := r.targets.Signed.Targets[AdvisoryDBTarget]
	if !ok {
		return nil, ErrNoAdvisories
	}
	raw, err := os.ReadFile(r.payloadPath(AdvisoryDBTarget, hex.EncodeToString(tf.Hashes["sha256"])))
	if err != nil {
		return nil, fmt.Errorf("read advisory database: %w", err)
	}
	if err := tf.VerifyLengthHashes(raw); err != nil {
		return nil, fmt.Errorf("read advisory database: %w", err)
	}
	db, _, err := advisory.Decode(raw)
	return db, err
}

// PublishAdvisoriesResult says what PublishAdvisories published.
type PublishAdvisoriesResult struct {
	Versions Versions `json:"versions"`
	Version  int64    `json:"advisories_version"`
	Bytes    int      `json:"bytes"`
	// Deltas maps each delta target to its size in bytes.
	Deltas map[string]int `json:"deltas"`
}

// PublishAdvisories publishes db as the advisory database, with deltas
// from the previous AdvisoryKeepDeltas versions (kept under
// advisories-history/ in the repository), and signs new targets, snapshot
// and timestamp. db.Version must be newer than the published one.
func (r *Repo) PublishAdvisories(db *advisory.DB) (PublishAdvisoriesResult, error) {
	var res PublishAdvisoriesResult
	fail := func(err error) (PublishAdvisoriesResult, error) {
		return PublishAdvisoriesResult{}, fmt.Errorf("publish advisories: %w", err)
	}
	prev, err := r.AdvisoryDB()
	switch {
	case errors.Is(err, ErrNoAdvisories):
	case err != nil:
		return fail(err)
	case db.Version <= prev.Version:
		return fail(fmt.Errorf("version %d is not newer than the published %d", db.Version, prev.Version))
	}
	if err := r.Unlock(); err != nil {
		return fail(err)
	}
	gz, sum, err := db.Encode()
	if err != nil {
		return fail(err)
	}
	meta, _ := json.Marshal(AdvisoryMeta{Version: db.Version, JSONSHA256: sum, Entries: len(db.Entries)})
	hist := filepath.Join(r.dir, advisoryHistoryDir)
	if err := os.MkdirAll(hist, 0o755); err != nil {
		return fail(err)
	}
	// Record the new version first: a delta target never names a base
	// that is not kept.
	if err := atomicfile.WriteFile(filepath.Join(hist, strconv.FormatInt(db.Version, 10)+".json.gz"), gz, 0o644); err != nil {
		return fail(err)
	}
	if err := r.AddTarget(AdvisoryDBTarget, gz, meta); err != nil {
		return fail(err)
	}
	res.Version, res.Bytes, res.Deltas = db.Version, len(gz), map[string]int{}
	for name := range r.targets.Signed.Targets {
		if strings.HasPrefix(name, AdvisoryDeltaPrefix) {
			delete(r.targets.Signed.Targets, name)
			r.dirty = true
		}
	}
	olds, err := historyVersions(hist)
	if err != nil {
		return fail(err)
	}
	kept := 0
	for i := len(olds) - 1; i >= 0; i-- {
		v := olds[i]
		if v >= db.Version {
			continue
		}
		path := filepath.Join(hist, strconv.FormatInt(v, 10)+".json.gz")
		if kept == AdvisoryKeepDeltas {
			_ = os.Remove(path)
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return fail(err)
		}
		old, _, err := advisory.Decode(raw)
		if err != nil {
			return fail(fmt.Errorf("history %s: %w", path, err))
		}
		d, err := advisory.Diff(old, db)
		if err != nil {
			return fail(err)
		}
		dz, err := d.Encode()
		if err != nil {
			return fail(err)
		}
		dm, _ := json.Marshal(AdvisoryMeta{Version: db.Version, From: v, JSONSHA256: sum, Entries: len(d.Upsert)})
		name := AdvisoryDeltaTarget(v)
		if err := r.AddTarget(name, dz, dm); err != nil {
			return fail(err)
		}
		res.Deltas[name] = len(dz)
		kept++
	}
	if res.Versions, err = r.Publish(); err != nil {
		return fail(err)
	}
	return res, nil
}

func historyVersions(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".json.gz")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
