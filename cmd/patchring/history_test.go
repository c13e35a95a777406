package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// TestPrintTxListsEveryPackage: a batch transaction shows each package it
// changed, what apt's solver added and where each ended.
func TestPrintTxListsEveryPackage(t *testing.T) {
	var out bytes.Buffer
	a := &app{Out: &out}
	printTx(a, apitypes.Transaction{
		ID: 7, Kind: "install", Started: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Outcome: "failed",
		Reason: "pilot: security",
		Items: []apitypes.TxItem{
			{Package: "footool", From: "1.0", To: "1.1", Action: "upgrade", Requested: true, Result: "restored"},
			{Package: "libfoo", From: "1.0", To: "1.1", Action: "upgrade", Result: "stuck", Now: "1.1"},
			{Package: "libbar", To: "2.0", Action: "install", Result: "restored"},
			{Package: "oldplugin", From: "1.0", Action: "remove", Result: "restored"},
		},
	}, false)
	want := `#7 2026-12-03 10:00:00 install of 4 packages  [failed]
    footool                      1.0 -> 1.1  (upgrade, restored)
    libfoo                       1.0 -> 1.1  (upgrade, by apt's solver, now at 1.1 (neither old nor new))
    libbar                       - -> 2.0  (install, by apt's solver, restored)
    oldplugin                    1.0 -> -  (remove, by apt's solver, restored)
    why: pilot: security
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
