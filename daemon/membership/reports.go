package membership

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/daemon/reporter"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
)

// reportRouter serves the report outbox under reporter.PathPrefix beside
// the repository files, on the same file protocol and for the same
// admitted peers.
type reportRouter struct {
	meta, reports exchange.Files
}

func (r reportRouter) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	if strings.HasPrefix(path, reporter.PathPrefix) {
		rc, n, err := r.reports.OpenFile(ctx, path)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", exchange.ErrFileNotFound, err)
		}
		return rc, n, nil
	}
	return r.meta.OpenFile(ctx, path)
}

// ReportMembers are the members among which the site's console reporter
// is chosen and whose records it collects: this node and the live members
// of its site (not visiting) that serve files. While the fleet publishes
// credentials, only members whose credential was verified count. Without
// the payload exchange nobody can collect from anyone: each node then
// reports only itself.
func (f *Membership) ReportMembers() []string {
	if f.x == nil {
		return []string{f.cfg.NodeID}
	}
	enforcing := f.cfg.Fleet != nil && f.cfg.Fleet() != nil
	out := []string{f.cfg.NodeID}
	for _, m := range f.g.Members() {
		if m.Local || m.Liveness != gossip.LivenessAlive || m.Site != f.cfg.Site || m.Visiting {
			continue
		}
		if enforcing && m.Credential == nil {
			continue
		}
		if _, ok := memberAddrInfo(m); !ok {
			continue
		}
		out = append(out, m.NodeID)
	}
	return out
}

// FetchReports asks member for its console records above after.
func (f *Membership) FetchReports(ctx context.Context, member string, after uint64) ([]report.Envelope, error) {
	if f.x == nil {
		return nil, fmt.Errorf("fetch reports from %s: payload exchange is off", member)
	}
	m, ok := f.g.Member(member)
	if !ok {
		return nil, fmt.Errorf("fetch reports from %s: not a member", member)
	}
	ai, ok := memberAddrInfo(m)
	if !ok {
		return nil, fmt.Errorf("fetch reports from %s: no address", member)
	}
	rc, _, err := f.x.FetchFile(ctx, ai, fmt.Sprintf("%s%d", reporter.PathPrefix, after), reporter.MaxBatchBytes)
	if err != nil {
		return nil, fmt.Errorf("fetch reports from %s: %w", member, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, reporter.MaxBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch reports from %s: %w", member, err)
	}
	envs, err := reporter.ParseBatch(b)
	if err != nil {
		return nil, fmt.Errorf("fetch reports from %s: %w", member, err)
	}
	return envs, nil
}
