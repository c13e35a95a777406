package localapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
)

// TestAsError checks the status and code of every kind of apicall.Error,
// also when wrapped.
func TestAsError(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{apicall.BadRequest("x"), http.StatusBadRequest, apitypes.CodeBadRequest},
		{apicall.Forbidden("x"), http.StatusForbidden, apitypes.CodeAccessDenied},
		{apicall.NotFound("x"), http.StatusNotFound, apitypes.CodeNotFound},
		{apicall.Conflict("x"), http.StatusConflict, apitypes.CodeConflict},
		{apicall.Unavailable("x"), http.StatusServiceUnavailable, apitypes.CodeUnavailable},
		{apicall.TooMany("x"), http.StatusTooManyRequests, apitypes.CodeTooMany},
		{apicall.NoSpace("x"), http.StatusInsufficientStorage, apitypes.CodeUnavailable},
		{fmt.Errorf("op: %w", apicall.Conflict("x")), http.StatusConflict, apitypes.CodeConflict},
		{errors.New("x"), http.StatusInternalServerError, apitypes.CodeInternal},
	} {
		e := asError(c.err)
		if e.Status != c.status || e.Code != c.code || e.Msg == "" {
			t.Errorf("%v (%T) became %d %s %q, want %d %s", c.err, c.err, e.Status, e.Code, e.Msg, c.status, c.code)
		}
	}
}
