package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/store"
)

// The engine's calls of the local API (its routes are in
// daemon/localapi/routes.go): GET /updates, GET /history, POST /install,
// POST /rollback.

// APIUpdates lists the engine's current decisions, as GET /updates shows.
func (e *Engine) APIUpdates(ctx context.Context) apitypes.Updates {
	ds, planned := e.Decisions()
	out := apitypes.Updates{Planned: planned, Updates: []apitypes.UpdateDecision{}}
	for _, d := range ds {
		out.Updates = append(out.Updates, apitypes.UpdateDecision{
			Source: d.Update.Source, Package: d.Update.Package, Version: d.Update.Version,
			Installed: d.Update.InstalledVersion, Classification: d.Update.Classification,
			FirstSeen: d.Update.FirstSeen, Ring: d.Ring, Action: string(d.Action), At: d.At,
			Reason: d.Reason, Rule: d.Rule,
		})
	}
	return out
}

// APIHistory lists the last limit transactions (0: all), newest first.
func (e *Engine) APIHistory(ctx context.Context, limit int) ([]apitypes.Transaction, error) {
	txs, err := e.History(limit)
	if err != nil {
		return nil, err
	}
	out := make([]apitypes.Transaction, 0, len(txs))
	for _, tx := range txs {
		out = append(out, tx.API())
	}
	return out, nil
}

// APIInstall installs a package now, outside the rings (an admin's
// request).
func (e *Engine) APIInstall(ctx context.Context, req apitypes.InstallRequest) (apitypes.Transaction, error) {
	if req.Package == "" {
		return apitypes.Transaction{}, apicall.BadRequest("install: name a package")
	}
	tx, err := e.InstallNow(ctx, req.Package, req.Version)
	if tx == nil && err != nil {
		return apitypes.Transaction{}, apicall.Conflict("%v", err)
	}
	return tx.API(), nil
}

// APIRollback rolls back transaction req.ID.
func (e *Engine) APIRollback(ctx context.Context, req apitypes.RollbackRequest) (apitypes.Transaction, error) {
	reason := req.Reason
	if reason == "" {
		reason = "admin: patchring rollback"
	}
	if _, err := e.Transaction(req.ID); err != nil {
		if store.IsNotFound(err) {
			return apitypes.Transaction{}, apicall.NotFound("no transaction %d", req.ID)
		}
		return apitypes.Transaction{}, err
	}
	tx, err := e.Rollback(ctx, req.ID, reason)
	if tx == nil && err != nil {
		return apitypes.Transaction{}, apicall.Conflict("%v", err)
	}
	return tx.API(), nil
}

// API converts the transaction to its local API form.
func (t *Tx) API() apitypes.Transaction {
	out := apitypes.Transaction{
		ID: t.ID, Kind: string(t.Kind), Reason: t.Reason, PolicyVersion: t.Policy, Started: t.Started,
		Ended: t.Ended, Outcome: string(t.Outcome), Error: t.Error, RolledBackBy: t.RolledBy, RebootRequired: t.Reboot,
		Batch: t.Batch,
	}
	for _, it := range t.Items {
		ai := apitypes.TxItem{Source: it.Source, Package: it.Package, From: it.From, To: it.To,
			Action: it.Action, Requested: it.Requested, Result: it.Result, Now: it.Now}
		if it.Payload != nil {
			ai.SHA256 = it.Payload.SHA256
		}
		out.Items = append(out.Items, ai)
	}
	for _, s := range t.Steps {
		out.Steps = append(out.Steps, apitypes.TxStep{Name: s.Name, At: s.At, Status: s.Status, Detail: s.Detail})
	}
	for _, r := range t.Restarts {
		s := fmt.Sprintf("%s (%s): %s", r.Service, r.Manager, r.Result)
		if r.Error != "" {
			s += ": " + r.Error
		}
		out.Restarted = append(out.Restarted, s)
	}
	for _, r := range t.RollbackRestarts {
		s := fmt.Sprintf("%s (%s): %s after the rollback", r.Service, r.Manager, r.Result)
		if r.Error != "" {
			s += ": " + r.Error
		}
		out.Restarted = append(out.Restarted, s)
	}
	for _, s := range t.Stale {
		out.Stale = append(out.Stale, s.String())
	}
	out.RebootReasons = slices.Clone(t.RebootReasons)
	return out
}
