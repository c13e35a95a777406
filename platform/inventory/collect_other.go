//go:build !linux && !windows && !darwin

package inventory

import (
	"context"
	"os"
)

const notHere = "no collector for this operating system"

func (s *scan) hostname() string {
	h, _ := os.Hostname()
	return h
}

func (s *scan) osInfo(ctx context.Context) *OSInfo {
	return &OSInfo{Unavailable: []Unavailable{{Source: "os", Reason: notHere}}}
}

func (s *scan) hardware(ctx context.Context) *Hardware {
	return &Hardware{Unavailable: []Unavailable{{Source: "hardware", Reason: notHere}}}
}

func (s *scan) defaultRoutes(list *[]Unavailable) []Route {
	*list = append(*list, Unavailable{Source: "default routes", Reason: notHere})
	return nil
}

func (s *scan) readPackages(ctx context.Context) *Packages {
	return &Packages{Managers: []string{}, Items: []Package{}, Unavailable: []Unavailable{{Source: "packages", Reason: notHere}}}
}

func (s *scan) rebootFlags(ctx context.Context, r *Reboot) {
	r.Unavailable = append(r.Unavailable, Unavailable{Source: "reboot flags", Reason: notHere})
}

func (s *scan) containerKind() string { return "none" }

func (s *scan) restart(ctx context.Context) *Restart {
	return &Restart{Unavailable: []Unavailable{{Source: "restart", Reason: notHere}}}
}

func (s *scan) security(ctx context.Context) *Security {
	return &Security{ASLR: -1, Unavailable: []Unavailable{{Source: "security", Reason: notHere}}}
}
