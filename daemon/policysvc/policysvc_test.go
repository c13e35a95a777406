package policysvc

import (
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/policy"
)

// TestGatePolicy: a gate reaches the local API with the evaluation's
// defaults spelled out (too_few_reports: wait) and open_after in the
// policy's own duration form.
func TestGatePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   policy.Gate
		want apitypes.GatePolicy
	}{
		{policy.Gate{Ring: "lab", MinSuccess: 95, MinNodes: 3},
			apitypes.GatePolicy{Ring: "lab", MinSuccess: 95, MinNodes: 3, TooFewReports: "wait"}},
		{policy.Gate{Ring: "lab", MinSuccess: 90, MinNodes: 2, TooFewReports: "open", OpenAfter: policy.Duration(72 * time.Hour)},
			apitypes.GatePolicy{Ring: "lab", MinSuccess: 90, MinNodes: 2, TooFewReports: "open", OpenAfter: "3d"}},
	} {
		if got := GatePolicy(tc.in); got != tc.want {
			t.Errorf("GatePolicy(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
