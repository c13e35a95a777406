package main

import "testing"

// The agent runs its Go code on max_procs cores (default one), unless the
// GOMAXPROCS environment variable says otherwise or max_procs is 0.
func TestMaxProcs(t *testing.T) {
	for _, tt := range []struct {
		setting int
		env     string
		want    int
		set     bool
	}{
		{1, "", 1, true},
		{4, "", 4, true},
		{0, "", 0, false},
		{1, "3", 0, false},
		{0, "3", 0, false},
	} {
		if got, set := maxProcs(tt.setting, tt.env); got != tt.want || set != tt.set {
			t.Errorf("maxProcs(%d, %q) = %d, %v; want %d, %v", tt.setting, tt.env, got, set, tt.want, tt.set)
		}
	}
}
