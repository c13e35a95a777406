package engine

import (
	"context"
	"net/http"
	"strconv"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/store"
)

// Routes registers the engine's local API routes.
func (e *Engine) Routes(api *localapi.Server) {
	api.Handle(http.MethodGet, "/updates", localapi.PermRead, func(ctx context.Context, r *localapi.Request) (any, error) {
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
		return out, nil
	})
	api.Handle(http.MethodGet, "/history", localapi.PermRead, func(ctx context.Context, r *localapi.Request) (any, error) {
		limit := 0
		if v := r.HTTP.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, localapi.BadRequest("limit %q is not a count", v)
			}
			limit = n
		}
		txs, err := e.History(limit)
		if err != nil {
			return nil, err
		}
		out := make([]apitypes.Transaction, 0, len(txs))
		for _, tx := range txs {
			out = append(out, tx.API())
		}
		return out, nil
	})
	api.Handle(http.MethodPost, "/install", localapi.PermAdmin, func(ctx context.Context, r *localapi.Request) (any, error) {
		var req apitypes.InstallRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		if req.Package == "" {
			return nil, localapi.BadRequest("install: name a package")
		}
		tx, err := e.InstallNow(ctx, req.Package, req.Version)
		if tx == nil && err != nil {
			return nil, localapi.Conflict("%v", err)
		}
		return tx.API(), nil
	})
	api.Handle(http.MethodPost, "/rollback", localapi.PermAdmin, func(ctx context.Context, r *localapi.Request) (any, error) {
		var req apitypes.RollbackRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		reason := req.Reason
		if reason == "" {
			reason = "admin: patchring rollback"
		}
		if _, err := e.Transaction(req.ID); err != nil {
			if store.IsNotFound(err) {
				return nil, localapi.NotFound("no transaction %d", req.ID)
			}
			return nil, err
		}
		tx, err := e.Rollback(ctx, req.ID, reason)
		if tx == nil && err != nil {
			return nil, localapi.Conflict("%v", err)
		}
		return tx.API(), nil
	})
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
	return out
}
