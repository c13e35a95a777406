package apitypes

import "encoding/json"

// ReportExport is GET /v1/reports/export: every console record the site's
// live members hold, for an offline site's bundle. Its JSON is the body of
// the console's ingest API ({"records": [...]}), so the bundle file is what
// `patchring console import` reads.
type ReportExport struct {
	// Records are signed envelopes (console/report.Envelope JSON), as the
	// nodes signed them.
	Records []json.RawMessage `json:"records"`
	// Problems name members whose records could not be collected.
	Problems []string `json:"problems,omitempty"`
}
