package localapi_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/inventory"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/internal/testutil"
	pinv "github.com/patchring/patchring/platform/inventory"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the route table")

// routeLines renders the route table, one route a line.
func routeLines() string {
	var b strings.Builder
	b.WriteString("# The local API's routes: method, path, permission, the part's method it calls.\n")
	b.WriteString("# Regenerate with: go test ./daemon/localapi -run TestRouteTableGolden -update\n")
	for _, r := range localapi.Routes() {
		fmt.Fprintf(&b, "%-4s %s%-20s %-5s %s\n", r.Method, apitypes.APIVersion, r.Path, r.Perm, r.Calls)
	}
	return b.String()
}

// TestRouteTableGolden pins every route's permission: a route that moves
// from admin to user changes testdata/routes.golden, a reviewed diff.
func TestRouteTableGolden(t *testing.T) {
	golden := filepath.Join("testdata", "routes.golden")
	got := routeLines()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("the route table differs from %s (if the change is meant, run with -update and review the diff):\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// allParts implements every part; each method records that it was called.
type allParts struct{ called []string }

func (a *allParts) note(m string) { a.called = append(a.called, m) }

func (a *allParts) Status(context.Context, apicall.Caller) apitypes.Status {
	a.note("Status.Status")
	return apitypes.Status{}
}
func (a *allParts) APILatest(context.Context) (*pinv.Snapshot, error) {
	a.note("Inventory.APILatest")
	return nil, apicall.Unavailable("no inventory yet")
}
func (a *allParts) APIScan(context.Context) (*pinv.Snapshot, error) {
	a.note("Inventory.APIScan")
	return nil, nil
}
func (a *allParts) Effective() apitypes.EffectivePolicy {
	a.note("Policy.Effective")
	return apitypes.EffectivePolicy{}
}
func (a *allParts) RefreshNow(context.Context) apitypes.EffectivePolicy {
	a.note("Policy.RefreshNow")
	return apitypes.EffectivePolicy{}
}
func (a *allParts) ImportBundle(context.Context, apitypes.BundleImportRequest) (apitypes.BundleImport, error) {
	a.note("Bundles.ImportBundle")
	return apitypes.BundleImport{}, nil
}
func (a *allParts) ExportReports(context.Context) (apitypes.ReportExport, error) {
	a.note("Reports.ExportReports")
	return apitypes.ReportExport{}, nil
}
func (a *allParts) Fleet() apitypes.Fleet { a.note("Fleet.Fleet"); return apitypes.Fleet{} }
func (a *allParts) Peers() apitypes.Peers { a.note("Fleet.Peers"); return apitypes.Peers{} }
func (a *allParts) FleetKeys(context.Context) apitypes.FleetKeys {
	a.note("FleetKeys.FleetKeys")
	return apitypes.FleetKeys{}
}
func (a *allParts) ChangeFleetKey(context.Context, apitypes.KeyRequest) (apitypes.FleetKeys, error) {
	a.note("FleetKeys.ChangeFleetKey")
	return apitypes.FleetKeys{}, nil
}
func (a *allParts) APIVulns(context.Context) (apitypes.Vulns, error) {
	a.note("Vulns.APIVulns")
	return apitypes.Vulns{}, nil
}
func (a *allParts) APIUpdates(context.Context) apitypes.Updates {
	a.note("Engine.APIUpdates")
	return apitypes.Updates{}
}
func (a *allParts) APIInstall(context.Context, apitypes.InstallRequest) (apitypes.Transaction, error) {
	a.note("Engine.APIInstall")
	return apitypes.Transaction{}, nil
}
func (a *allParts) APIRollback(context.Context, apitypes.RollbackRequest) (apitypes.Transaction, error) {
	a.note("Engine.APIRollback")
	return apitypes.Transaction{}, nil
}
func (a *allParts) StatusFor(context.Context, apicall.Caller) apitypes.RebootStatus {
	a.note("Reboot.StatusFor")
	return apitypes.RebootStatus{}
}
func (a *allParts) DeferFor(context.Context, apicall.Caller, apitypes.DeferRequest) (apitypes.RebootStatus, error) {
	a.note("Reboot.DeferFor")
	return apitypes.RebootStatus{}, nil
}
func (a *allParts) RefuseFor(context.Context, apicall.Caller, apitypes.RefuseRequest) (apitypes.RebootStatus, error) {
	a.note("Reboot.RefuseFor")
	return apitypes.RebootStatus{}, nil
}
func (a *allParts) RestartFor(context.Context, apicall.Caller, apitypes.RestartRequest) (apitypes.RebootStatus, error) {
	a.note("Reboot.RestartFor")
	return apitypes.RebootStatus{}, nil
}
func (a *allParts) OpenEvents(context.Context, apicall.Caller) (func(context.Context) (apitypes.Event, bool), func(), error) {
	a.note("Reboot.OpenEvents")
	return nil, nil, apicall.TooMany("too many event streams")
}

func (a *allParts) APIUnmanaged(context.Context) (apitypes.Unmanaged, error) {
	a.note("Unmanaged.APIUnmanaged")
	return apitypes.Unmanaged{}, nil
}

// engineHistory and inventoryHistory split the two APIHistory methods.
type engineHistory struct{ *allParts }

func (e engineHistory) APIHistory(context.Context, int) ([]apitypes.Transaction, error) {
	e.note("Engine.APIHistory")
	return nil, apicall.BadRequest("no history")
}

type inventoryHistory struct{ *allParts }

func (i inventoryHistory) APIHistory(context.Context, int) ([]inventory.HistoryRecord, error) {
	i.note("Inventory.APIHistory")
	return nil, nil
}

func everyPart(a *allParts) localapi.Parts {
	return localapi.Parts{Status: a, Inventory: inventoryHistory{a}, Policy: a, Bundles: a, Reports: a, Fleet: a,
		FleetKeys: a, Engine: engineHistory{a}, Reboot: a, Unmanaged: a, Vulns: a}
}

// TestMountServesTheTable checks that Mount serves exactly the table, that
// each route calls the method the table names, and that switched-off
// parts have no routes.
func TestMountServesTheTable(t *testing.T) {
	a := &allParts{}
	s := localapi.New(testutil.Logger(t), "")
	s.Mount(everyPart(a))
	want := map[string]localapi.Perm{}
	for _, r := range localapi.Routes() {
		want[r.Method+" "+apitypes.APIVersion+r.Path] = r.Perm
	}
	if got := s.Served(); !maps.Equal(got, want) {
		t.Fatalf("served %v, the table has %v", got, want)
	}
	// Unknown callers may read: every read route reaches its method.
	for _, r := range localapi.Routes() {
		if r.Perm != localapi.PermRead {
			continue
		}
		a.called = nil
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(r.Method, apitypes.APIVersion+r.Path, nil))
		if !slices.Equal(a.called, []string{r.Calls}) {
			t.Errorf("%s %s called %v, the table says %s", r.Method, r.Path, a.called, r.Calls)
		}
	}

	off := localapi.New(testutil.Logger(t), "")
	off.Mount(localapi.Parts{Status: a})
	if got := off.Served(); len(got) != 1 || got["GET "+apitypes.APIVersion+"/status"] != localapi.PermRead {
		t.Errorf("with only the status part, served %v", got)
	}
}

// TestPartErrorsBecomeAnswers checks that the kinds of apicall.Error reach
// the client as their status and code.
func TestPartErrorsBecomeAnswers(t *testing.T) {
	s := localapi.New(testutil.Logger(t), "")
	s.Mount(everyPart(&allParts{}))
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/inventory", http.StatusServiceUnavailable, apitypes.CodeUnavailable},
		{"/history", http.StatusBadRequest, apitypes.CodeBadRequest},
		{"/history?limit=-1", http.StatusBadRequest, apitypes.CodeBadRequest},
		{"/reboot/events", http.StatusTooManyRequests, apitypes.CodeTooMany},
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, apitypes.APIVersion+c.path, nil))
		var e apitypes.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("GET %s: %v: %s", c.path, err, rec.Body)
		}
		if rec.Code != c.status || e.Code != c.code || e.Error == "" {
			t.Errorf("GET %s answered %d %+v, want %d %s", c.path, rec.Code, e, c.status, c.code)
		}
	}
}
