package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
)

// Limits on one ingest request.
const (
	MaxIngestBytes   = 64 << 20
	MaxIngestRecords = 5000
)

// IngestRequest is the body of POST /api/v1/ingest: records of one site,
// each signed by its node.
type IngestRequest struct {
	Records []report.Envelope `json:"records"`
}

// IngestResult says what became of one record: "stored", "duplicate"
// (already stored: not counted again) or "refused" with the reason. A
// reporter drops stored and duplicate records from its queue and keeps
// none of the refused ones either (they will never be accepted).
type IngestResult struct {
	Node   string `json:"node,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// IngestResponse is the answer, one result per record in order.
type IngestResponse struct {
	Results []IngestResult `json:"results"`
}

func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxIngestBytes))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("ingest: body: %w", err))
		return
	}
	var req IngestRequest
	if err := json.Unmarshal(body, &req); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("ingest: %w", err))
		return
	}
	if len(req.Records) > MaxIngestRecords {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("ingest: %d records in one request (at most %d)", len(req.Records), MaxIngestRecords))
		return
	}
	resp, err := s.Ingest(r.Context(), req)
	if err != nil {
		s.cfg.Logger.Error("ingest", "err", err)
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, resp)
}

// Ingest verifies and stores records: each must carry a valid signature
// by the key its node ID names, and the verifier must accept the node.
// Refused records are reported, never stored.
func (s *Server) Ingest(ctx context.Context, req IngestRequest) (IngestResponse, error) {
	resp := IngestResponse{Results: make([]IngestResult, len(req.Records))}
	var entries []store.Entry
	var at []int
	now := s.cfg.Now()
	for i, env := range req.Records {
		rec, pub, err := report.Open(env)
		if err != nil {
			resp.Results[i] = IngestResult{Status: "refused", Error: err.Error()}
			s.cfg.Logger.Warn("refused a record", "err", err)
			continue
		}
		resp.Results[i] = IngestResult{Node: rec.Node, Seq: rec.Seq}
		info, err := s.cfg.Verifier.VerifyNode(ctx, rec.Node, pub, env.Credential)
		if errors.Is(err, ErrUnavailable) {
			return IngestResponse{}, fmt.Errorf("ingest: %w", err)
		}
		if err != nil {
			resp.Results[i].Status, resp.Results[i].Error = "refused", fmt.Sprintf("node %s is not a fleet member: %v", rec.Node, err)
			s.cfg.Logger.Warn("refused a record", "node", rec.Node, "err", err)
			continue
		}
		site := rec.Site
		if info.Site != "" {
			site = info.Site
		}
		if info.Hostname != "" {
			rec.Hostname = info.Hostname
		}
		entries = append(entries, store.Entry{Record: rec, Digest: env.Digest(), Site: site, ReceivedAt: now})
		at = append(at, i)
	}
	if len(entries) == 0 {
		return resp, nil
	}
	results, errs, err := s.cfg.Store.IngestBatch(ctx, entries)
	if err != nil {
		return IngestResponse{}, err
	}
	for j, i := range at {
		switch {
		case errs[j] != nil:
			resp.Results[i].Status, resp.Results[i].Error = "refused", errs[j].Error()
			if errors.Is(errs[j], store.ErrStale) || errors.Is(errs[j], store.ErrConflict) {
				s.cfg.Logger.Warn("refused a replayed record", "node", resp.Results[i].Node, "seq", resp.Results[i].Seq, "err", errs[j])
			}
		case results[j] == store.Duplicate:
			resp.Results[i].Status = "duplicate"
		default:
			resp.Results[i].Status = "stored"
		}
	}
	return resp, nil
}
