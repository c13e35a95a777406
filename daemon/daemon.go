// Package daemon is patchringd's composition root: it opens the state
// store, loads the node identity, starts the agent's subsystems and serves
// the local API, and stops all of it cleanly when its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/bundle"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/enroll"
	"github.com/patchring/patchring/daemon/inventory"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/membership"
	"github.com/patchring/patchring/daemon/metrics"
	"github.com/patchring/patchring/daemon/nodekey"
	"github.com/patchring/patchring/daemon/policysvc"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reporter"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/daemon/unmanaged"
	"github.com/patchring/patchring/daemon/vulns"
	"github.com/patchring/patchring/internal/rungroup"
	"github.com/patchring/patchring/internal/version"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/gossip"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/diskspace"
	pinv "github.com/patchring/patchring/platform/inventory"
	"github.com/patchring/patchring/platform/ipc"
	platformreboot "github.com/patchring/patchring/platform/reboot"
	"github.com/patchring/patchring/platform/services"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/trust"
)

// service is a long-running part of the agent.
type service interface {
	Name() string
	Run(ctx context.Context) error
}

// statusReporter is a subsystem that contributes a section to the status.
type statusReporter interface {
	Status() apitypes.SubsystemStatus
}

// Daemon is one running agent.
type Daemon struct {
	cfg      config.Config
	log      *slog.Logger
	db       *store.DB
	id       *nodekey.Identity
	api      *localapi.Server
	metrics  *prometheus.Registry
	hostname string
	started  time.Time
	starts   int

	services  []service
	reporters []statusReporter

	inv   *inventory.Service
	trust *trust.Client
	// aptSnippet is the apt proxy's apt.conf.d snippet ("" for none).
	aptSnippet string
	pol        *policysvc.Service
	engine     *engine.Engine
	reboot     *reboot.Orchestrator
	content    *content.Store
	fleet      *membership.Membership // nil without gossip
	vulns      *vulns.Service         // nil without a verified repository
	bundles    *bundle.Importer       // nil without a policy source
	aptPx      *aptproxy.Proxy        // nil unless apt.proxy.enabled
	outbox     *reporter.Outbox       // nil without a policy source
	unmanaged  *unmanaged.Service     // the LAN's devices without an agent
	reporter   *reporter.Reporter     // nil without a policy source
}

var keyStarts = []byte("start_count")

// New opens the state and prepares the agent. It fails, without changing
// anything on disk, when the state dir is in use or its database is
// unreadable.
func New(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", cfg.StateDir, err)
	}
	db, err := store.Open(filepath.Join(cfg.StateDir, store.FileName), store.Options{})
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, db: db, started: time.Now()}
	ok := false
	defer func() {
		if !ok {
			db.Close()
			if d.aptPx != nil {
				d.aptPx.Close() // bound in New; Run never comes
			}
		}
	}()
	if d.id, err = nodekey.LoadOrCreate(cfg.StateDir); err != nil {
		return nil, err
	}
	d.hostname = cfg.Hostname
	if d.hostname == "" {
		d.hostname, _ = os.Hostname()
	}
	if err := d.db.Get(store.BucketMeta, keyStarts, &d.starts); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	d.starts++
	if err := d.db.Put(store.BucketMeta, keyStarts, d.starts); err != nil {
		return nil, fmt.Errorf("record start: %w", err)
	}
	d.metrics = metrics.NewRegistry()
	d.api = localapi.New(log, cfg.AdminGroup)
	if err := d.subsystems(); err != nil {
		return nil, err
	}
	d.api.Mount(d.apiParts())
	metrics.Register(d.metrics, d.metricSources())
	ok = true
	return d, nil
}

// subsystems builds the agent's parts from the configuration.
func (d *Daemon) subsystems() error {
	cfg := d.cfg
	inv, err := inventory.New(inventory.Config{
		DB:       d.db,
		Log:      d.log,
		Options:  pinv.Options{Root: cfg.Inventory.Root, DpkgStatus: d.dpkgStatus()},
		Interval: cfg.Inventory.Interval,
		OnScan:   d.onScan,
	})
	if err != nil {
		return err
	}
	d.inv = inv
	d.add(inv)

	// A node enrolled online renews its credential with the issuing
	// service it enrolled at.
	if enroll.Enrolled(cfg.StateDir) {
		rn, err := enroll.NewRenewer(enroll.RenewerConfig{
			StateDir: cfg.StateDir,
			Node:     enroll.Node{ID: d.ID(), Hostname: d.hostname, Sign: d.id.Key.Sign},
			Log:      d.log.With("part", "enrollment"),
		})
		if err != nil {
			return err
		}
		d.add(rn)
	}

	if cfg.Policy.Origin != "" {
		root, err := os.ReadFile(cfg.Policy.RootFile)
		if err != nil {
			return fmt.Errorf("policy: trusted root: %w", err)
		}
		tc, err := trust.New(trust.Config{
			TrustedRoot: root,
			StateDir:    filepath.Join(cfg.StateDir, "tuf"),
			Sources:     []trust.Source{trust.NewOriginSource(cfg.Policy.Origin)},
			Logger:      d.log,
		})
		if err != nil {
			return fmt.Errorf("policy: %w", err)
		}
		d.trust = tc
		d.pol = policysvc.New(policysvc.Config{
			Trust:    tc,
			Log:      d.log,
			Interval: cfg.Policy.RefreshInterval,
			Facts:    d.Facts,
			NodeID:   d.ID(),
			// Re-read on every refresh: `patchringd enroll` and renewal
			// only write the file.
			CredentialFile: filepath.Join(cfg.StateDir, credential.FileName),
			OnChange: func(*policy.Policy, string) {
				d.triggerEngine()
				if d.bundles != nil {
					d.bundles.MetadataChanged()
				}
				if d.vulns != nil {
					d.vulns.Trigger()
				}
				if d.reboot != nil {
					d.reboot.RulesChanged()
				}
				if d.unmanaged != nil {
					d.unmanaged.PolicyChanged()
				}
			},
		})
		d.add(d.pol)
		if err := d.startVulns(tc); err != nil {
			return fmt.Errorf("vulns: %w", err)
		}
	}

	// The libp2p host that shares payloads and repository files with the
	// site needs the content store even without apt.
	if cfg.Apt.Enabled || (cfg.Gossip.Enabled && cfg.P2P.Enabled) {
		maxBytes, err := contentMaxBytes(cfg)
		if err != nil {
			return fmt.Errorf("content store: %w", err)
		}
		d.log.Info("content store", "max_bytes", maxBytes, "setting", cfg.Content.MaxSize)
		cs, err := content.Open(filepath.Join(cfg.StateDir, "content"), content.Options{Logger: d.log, MaxBytes: maxBytes})
		if err != nil {
			return fmt.Errorf("content store: %w", err)
		}
		d.content = cs
	}
	if d.pol != nil {
		// Offline bundles are verified from the same root of trust.
		bc := bundle.Config{Log: d.log, StateDir: cfg.StateDir, Policy: d.pol, Targets: d.trust, Imported: func() {
			d.triggerEngine()
			if d.vulns != nil {
				// The bundle's advisory database is in the store only now.
				d.vulns.Trigger()
			}
		}}
		if d.content != nil {
			bc.Content = d.content
		}
		if d.trust != nil {
			bc.TrustState = d.trust.LastGood
			bc.Apt = aptSeeder{d}
			bc.FromSite = d.fromSite
		}
		d.bundles = bundle.New(bc)
		d.add(d.bundles)
	}
	if d.pol != nil {
		// The outbox exists before the fleet, which serves it to the
		// site's reporter.
		if err := d.startReporter(); err != nil {
			return err
		}
	}
	d.startUnmanaged()
	if cfg.Gossip.Enabled {
		if err := d.startFleet(); err != nil {
			return err
		}
		d.add(d.fleet)
	}
	// Headless hosts of a site take turns rebooting under a lease shared
	// over gossip; without gossip the lease is local to this node.
	var lease reboot.Lease = reboot.LocalLease{}
	if d.fleet != nil {
		lease = d.fleet.Lease()
	}
	rb, err := reboot.New(reboot.Config{
		Store:    d.db,
		Log:      d.log,
		Rebooter: platformreboot.New(platformreboot.Options{Command: cfg.Reboot.Command}),
		Headless: cfg.Reboot.Headless,
		Site:     cfg.Site,
		Rules:    d.rebootRules,
		Lease:    lease,
		Sessions: reboot.Logind{},
		Hooks:    d.rebootHooks,
	})
	if err != nil {
		return err
	}
	d.reboot = rb
	d.add(rb)
	if err := d.startAptProxy(); err != nil {
		return err
	}
	if cfg.Apt.Enabled {
		if err := d.startEngine(); err != nil {
			return err
		}
	}
	return nil
}

// aptSnippetPath is where the apt proxy's apt.conf.d snippet goes ("" for
// none).
func (d *Daemon) aptSnippetPath() string {
	switch s := d.cfg.Apt.Proxy.Snippet; s {
	case "none":
		return ""
	case "":
		root := d.cfg.Apt.Root
		if root == "" {
			root = "/"
		}
		return filepath.Join(root, "etc/apt/apt.conf.d", aptproxy.SnippetName)
	default:
		return s
	}
}

// startAptProxy builds the verifying apt proxy when it is enabled; when it
// is not, a snippet a previous run left behind is removed, so apt does not
// point at a proxy that is not there.
func (d *Daemon) startAptProxy() error {
	cfg := d.cfg
	snippet := d.aptSnippetPath()
	if !cfg.Apt.Proxy.Enabled {
		if snippet != "" && (cfg.Apt.Enabled || cfg.Apt.Root != "") {
			if err := aptproxy.RemoveSnippet(snippet); err != nil {
				d.log.Warn("apt proxy: remove snippet", "err", err)
			}
		}
		return nil
	}
	if d.content == nil {
		return errors.New("apt.proxy: needs the content store (apt.enabled, or gossip and p2p)")
	}
	root := cfg.Apt.Root
	if root == "" {
		root = "/"
	}
	pc := aptproxy.Config{
		Listen:    cfg.Apt.Proxy.Listen,
		Root:      root,
		Store:     d.content,
		StateFile: filepath.Join(cfg.StateDir, "aptproxy.json"),
		Logger:    d.log,
	}
	if d.trust != nil {
		// An offline bundle's apt snapshot: pinned while the admin's
		// verified metadata holds it and is unexpired (docs/APT.md).
		pc.Pinned = bundle.PinnedReleases(d.trust.LastGood, time.Now)
	}
	if d.fleet != nil {
		if pf := d.fleet.AptFetcher(); pf != nil {
			pc.Peers = pf
		}
		pc.Releases = d.fleet.AptReleases()
	}
	px, err := aptproxy.New(pc)
	if err != nil {
		return err
	}
	if d.fleet != nil {
		d.fleet.ServeAptReleases(px)
	}
	d.aptPx = px
	d.aptSnippet = snippet
	d.add(&aptProxyService{px: px, snippet: snippet, log: d.log})
	return nil
}

// aptProxyService runs the apt proxy with its apt.conf.d snippet in place:
// written when it starts serving, removed when it stops.
type aptProxyService struct {
	px      *aptproxy.Proxy
	snippet string
	log     *slog.Logger
}

func (s *aptProxyService) Name() string { return "aptproxy" }

func (s *aptProxyService) Run(ctx context.Context) error {
	if s.snippet != "" {
		if err := aptproxy.WriteSnippet(s.snippet, s.px.URL(), s.px.PinnedAptConf(ctx)); err != nil {
			s.px.Close()
			return err
		}
		defer func() {
			if err := aptproxy.RemoveSnippet(s.snippet); err != nil {
				s.log.Warn("apt proxy: remove snippet", "err", err)
			}
		}()
	}
	s.log.Info("apt proxy: serving", "url", s.px.URL(), "snippet", s.snippet)
	return s.px.Run(ctx)
}

// aptSeeder hands a bundle's pinned apt releases to the apt proxy, when
// it runs, and rewrites the apt.conf.d snippet so apt itself accepts the
// pinned releases past their Valid-Until for as long as the pin holds.
type aptSeeder struct{ d *Daemon }

func (a aptSeeder) SeedRelease(ctx context.Context, url string, h content.Hash) error {
	px := a.d.aptPx
	if px == nil {
		return nil
	}
	if err := px.SeedRelease(ctx, url, h); err != nil {
		return err
	}
	if a.d.aptSnippet != "" {
		if err := aptproxy.WriteSnippet(a.d.aptSnippet, px.URL(), px.PinnedAptConf(ctx)); err != nil {
			return err
		}
	}
	return nil
}

// errNotFromSite is the origin of a file the site's peers must provide.
var errNotFromSite = errors.New("only the site's peers hold it")

// fromSite fetches a content-addressed file from the site's peers (an
// offline snapshot's pinned Release file, which no vendor serves any more).
func (d *Daemon) fromSite(ctx context.Context, h content.Hash, size int64) error {
	if d.fleet == nil || d.fleet.AptFetcher() == nil {
		return errors.New("no site: gossip and p2p are off")
	}
	return d.fleet.AptFetcher().FetchFromPeers(ctx, h, size, func(context.Context, int64) (io.ReadCloser, error) {
		return nil, errNotFromSite
	})
}

// aptTraffic is the apt proxy's traffic for the local API.
func (d *Daemon) aptTraffic() []apitypes.AptTraffic {
	if d.aptPx == nil {
		return nil
	}
	st := d.aptPx.Stats()
	var out []apitypes.AptTraffic
	for _, k := range []aptproxy.Kind{aptproxy.KindRelease, aptproxy.KindIndex, aptproxy.KindPackage} {
		c := st[k.String()]
		out = append(out, apitypes.AptTraffic{Kind: k.String(), FromVendor: c.FromVendor, FromPeers: c.FromPeers, FromStore: c.FromStore, Refused: c.Refused})
	}
	return out
}

// fleetWithApt is the site membership as the local API's fleet part, with
// the apt proxy's traffic added to the peers view.
type fleetWithApt struct {
	*membership.Membership
	d *Daemon
}

func (f fleetWithApt) Peers() apitypes.Peers {
	p := f.Membership.Peers()
	p.Apt = f.d.aptTraffic()
	return p
}

// apiParts are the parts the local API serves (the route table is in
// daemon/localapi/routes.go); a part that is off stays nil.
func (d *Daemon) apiParts() localapi.Parts {
	p := localapi.Parts{Status: d, Inventory: d.inv, Reboot: d.reboot}
	if d.pol != nil {
		p.Policy, p.Bundles = d.pol, d.bundles
	}
	if d.reporter != nil {
		p.Reports = d
	}
	if d.fleet != nil {
		p.Fleet, p.FleetKeys = fleetWithApt{Membership: d.fleet, d: d}, d.fleet
	}
	if d.unmanaged != nil {
		p.Unmanaged = d.unmanaged
	}
	if d.engine != nil {
		p.Engine = d.engine
	}
	if d.vulns != nil {
		p.Vulns = d.vulns
	}
	return p
}

// fleetStats are the results per ring and update gates read: the site's
// (what its members gossip; empty without gossip, so site gates stay
// closed) and the fleet's (the console's verified fleet status document;
// none without one, so fleet gates stay closed).
func (d *Daemon) fleetStats() policy.FleetView {
	v := policy.Scoped{Site: policy.FleetStats{}}
	if d.fleet != nil {
		v.Site = d.fleet.FleetStats()
	}
	if d.pol != nil {
		if fs := d.pol.FleetStatus(); fs != nil {
			v.Fleet = fs
		}
	}
	return v
}

// fleetFirstSeen is when the fleet first saw an update, from the console's
// verified fleet status document.
func (d *Daemon) fleetFirstSeen(k policy.UpdateKey) (time.Time, bool) {
	if d.pol == nil {
		return time.Time{}, false
	}
	return d.pol.FleetStatus().FirstSeen(k)
}

// startFleet builds the site membership from the configuration.
func (d *Daemon) startFleet() error {
	cfg := d.cfg
	mc := membership.Config{
		Format: d.packageFormat(),
		Log:    d.log, Identity: d.id.Key, NodeID: d.ID(), Hostname: d.hostname,
		Site: cfg.Site, Tags: cfg.Tags, Gossip: cfg.Gossip, P2P: cfg.P2P,
		PeersFile:     filepath.Join(cfg.StateDir, "gossip-peers"),
		PolicyRefresh: cfg.Policy.RefreshInterval,
		Content:       d.content,
		Trust:         d.trust,
		CurrentPolicy: d.currentPolicy,
		Facts:         d.Facts,
		Inventory:     d.inv.Latest,
		Engine: func() membership.Engine {
			if d.engine == nil {
				return nil
			}
			return d.engine
		},
		Reboot: func() membership.RebootStatus {
			if d.reboot == nil {
				return nil
			}
			return d.reboot
		},
		Metrics: d.metrics,
	}
	if d.vulns != nil {
		mc.Exposure = func() gossip.Exposure {
			v := d.vulns.CachedSummary(context.Background())
			return gossip.Exposure{Critical: v.Critical, High: v.High, Medium: v.Medium, Low: v.Low, KEV: v.KEV,
				NoFix: v.NoFix, AdvisoryVersion: uint64(max(v.Version, 0))}
		}
	}
	if d.pol != nil {
		mc.Policy = d.pol
		mc.Fleet = d.pol.Fleet
		mc.Credential = d.pol.Credential
	}
	if d.outbox != nil {
		mc.Reports = d.outbox
	}
	if d.unmanaged != nil {
		mc.Unmanaged = d.unmanaged
	}
	m, err := membership.New(mc)
	if err != nil {
		return err
	}
	d.fleet = m
	return nil
}

// startEngine builds the update engine on the machine's package manager
// (apt or dnf, see pickManager) and the content store.
func (d *Daemon) startEngine() error {
	cfg := d.cfg
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	manager, err := pickManager(cfg.Apt.Manager, cfg.Apt.Root, cfg.Apt.AptConfig)
	if err != nil {
		return err
	}
	var pkgs engine.Packages
	var pkgRoot string
	if manager == managerDnf {
		if pkgs, pkgRoot, err = dnfPackages(cfg, d.log); err != nil {
			return fmt.Errorf("dnf: %w", err)
		}
	} else {
		ao := apt.Options{AptConfig: cfg.Apt.AptConfig, Logger: d.log}
		if d.aptPx != nil {
			ao.HTTPProxy = d.aptPx.URL()
		}
		b, err := apt.New(ctx, ao)
		if err != nil {
			return fmt.Errorf("apt: %w", err)
		}
		pkgs, pkgRoot = engine.AptPackages(b), b.Paths().Root
	}
	d.log.Info("engine: package manager", "manager", manager, "root", pkgRoot)
	var peers engine.PeerFetcher
	if d.fleet != nil {
		peers = d.fleet.PeerFetcher()
	}
	var catalog engine.Catalog // the signed catalog's third-party payloads
	if d.pol != nil {
		catalog = engine.TrustCatalog(d.pol.Catalog, d.trust)
	}
	var fixes func(pkg, version string) (string, bool)
	if d.vulns != nil {
		fixes = d.vulns.Fixes
	}
	d.engine = engine.New(engine.Config{
		Vulns:        fixes,
		DB:           d.db,
		Log:          d.log,
		Packages:     pkgs,
		Content:      engine.StoreContent(d.content, peers),
		Policy:       d.currentPolicy,
		Facts:        d.Facts,
		Fleet:        d.fleetStats,
		FirstSeen:    d.fleetFirstSeen,
		Catalog:      catalog,
		Interval:     cfg.Apt.CheckInterval,
		RefreshEvery: cfg.Apt.RefreshInterval,
		HealthEnv:    []string{"PATCHRING_ROOT=" + pkgRoot},
		OnReboot: func(since time.Time, reason string, pkgs []string) {
			if err := d.reboot.SetRequired(context.Background(), since, reason, pkgs); err != nil {
				d.log.Warn("reboot: record required", "err", err)
			}
		},
		OnUrgentReboot: func(since time.Time, reason string, pkgs []string, deadline time.Duration, rule string) {
			if err := d.reboot.SetRequiredUrgent(context.Background(), since, reason, pkgs, reboot.Urgent{Deadline: deadline, Why: rule}); err != nil {
				d.log.Warn("reboot: record required", "err", err)
			}
		},
		// The agent's own package installs detached and must come back
		// healthy (see engine/selfupdate.go).
		SelfPackage: SelfPackage,
		Detacher:    d.selfJobs(),
		SelfHealth:  d.selfHealth,
		SelfRestart: d.selfRestart,
		// Services still running replaced code after an install, as the
		// policy's restart_services says.
		Services: services.New(services.Options{Root: pkgRoot}),
	})
	d.add(d.engine)
	return nil
}

func (d *Daemon) currentPolicy() (*policy.Policy, string) {
	if d.pol == nil {
		return nil, ""
	}
	return d.pol.Current()
}

// contentMaxBytes is the content store's cap from content.max_size, a
// share of the file system holding the state dir by default; 0 is no cap.
func contentMaxBytes(cfg config.Config) (int64, error) {
	z, err := config.ParseStoreSize(cfg.Content.MaxSize)
	if err != nil {
		return 0, fmt.Errorf("content.max_size: %w", err)
	}
	if z.Unlimited || z.Bytes > 0 {
		return z.Resolve(0), nil
	}
	u, err := diskspace.Of(cfg.StateDir)
	if err != nil {
		return 0, fmt.Errorf("size the content store (set content.max_size to a size to skip this): %w", err)
	}
	return z.Resolve(u.Total), nil
}

// rebootRules maps the signed policy's reboot rules for this node to the
// orchestrator's. Without a policy nothing is forced.
// rebootHooks are the signed policy's reboot hooks (none without a
// policy).
func (d *Daemon) rebootHooks() reboot.Hooks {
	p, _ := d.currentPolicy()
	if p == nil {
		return reboot.Hooks{}
	}
	conv := func(h *policy.Hook) *reboot.Hook {
		if h == nil {
			return nil
		}
		return &reboot.Hook{Command: h.Command, Timeout: h.Timeout.Std(), MaxOutput: h.OutputLimit()}
	}
	return reboot.Hooks{PreReboot: conv(p.RebootHooks.PreReboot), PostReboot: conv(p.RebootHooks.PostReboot)}
}

func (d *Daemon) rebootRules() reboot.Rules {
	p, _ := d.currentPolicy()
	if p == nil {
		return reboot.Rules{}
	}
	pr := p.RebootRules(d.Facts())
	r := reboot.Rules{
		NotifyAhead:  pr.NotifyAhead,
		DeferChoices: reboot.ChoicesFromDurations(pr.DeferChoices),
		MaxDeferrals: pr.MaxDeferrals,
		AllowRefuse:  pr.AllowRefuse,
		// Without a policy (above) the session user may restart too.
		AdminRestartOnly: pr.UserRestart == policy.UserRestartNone,
		Deadline:         pr.Deadline,
		Grace:            pr.Grace,
		SiteConcurrency:  pr.MaxConcurrent,
		Group:            pr.Group,
	}
	// Countdown notices: 15 and 1 minutes ahead, or within the notice
	// the policy gives when that is shorter.
	if pr.NotifyAhead > 0 && pr.NotifyAhead < 15*time.Minute {
		r.Countdown = []time.Duration{pr.NotifyAhead}
		if pr.NotifyAhead > 3*time.Minute {
			r.Countdown = append(r.Countdown, time.Minute)
		}
	}
	if ah := pr.ActiveHours; ah != nil {
		if v, err := reboot.ParseActiveHours(ah.Start, ah.End, ah.TZ); err == nil {
			r.ActiveHours = v
		}
	}
	if h := pr.AutoReboot; h != nil {
		r.AutoWindow = h.Occurrence
	}
	return r
}

// add registers a long-running part and its status section.
func (d *Daemon) add(s service) {
	d.services = append(d.services, s)
	if r, ok := s.(statusReporter); ok {
		d.reporters = append(d.reporters, r)
	}
}

// dpkgStatus is the dpkg database the agent manages: the sandbox's when
// apt runs in a sandboxed root.
func (d *Daemon) dpkgStatus() string {
	if d.cfg.Apt.Root != "" {
		return filepath.Join(d.cfg.Apt.Root, "var/lib/dpkg/status")
	}
	return ""
}

func (d *Daemon) onScan(snap *pinv.Snapshot, changes []pinv.Change) {
	if len(changes) > 0 {
		d.triggerEngine()
	}
}

func (d *Daemon) triggerEngine() {
	if d.engine != nil {
		d.engine.Trigger()
	}
}

// Facts describes this node for the policy: identity, site, tags and what
// the inventory knows of its OS.
func (d *Daemon) Facts() policy.NodeFacts {
	f := policy.NodeFacts{
		NodeID:   d.ID(),
		Hostname: d.hostname,
		Site:     d.cfg.Site,
		Tags:     d.cfg.Tags,
		Headless: d.cfg.Reboot.Headless,
	}
	if d.pol != nil {
		// While the repository publishes fleet.json, site and tags for ring
		// selection are the admin-signed credential's, never the local
		// configuration's (none at all without a valid credential).
		if site, tags, ok := d.pol.SiteTags(); ok {
			f.Site, f.Tags = site, tags
		}
	}
	if snap := d.inv.Latest(); snap != nil && snap.OS != nil {
		f.OSID, f.OSVersion = snap.OS.ID, snap.OS.VersionID
		f.Arch = debArch(snap.OS.Architecture)
	}
	return f
}

// debArch maps a kernel machine name to Debian's architecture name.
func debArch(m string) string {
	switch m {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "armv7l":
		return "armhf"
	case "i686", "i386":
		return "i386"
	}
	return m
}

// ID is the node's ID.
func (d *Daemon) ID() string { return d.id.ID.String() }

// Run serves until ctx is done, then stops every subsystem and closes the
// state. A cancelled context is a clean exit.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.db.Close()
	ln, err := ipc.Listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	d.log.Info("patchringd started", "node", d.ID(), "version", version.Version, "state_dir", d.cfg.StateDir, "socket", d.cfg.Socket, "start", d.starts)

	g, gctx := rungroup.New(ctx)
	g.Go("local api", func(ctx context.Context) error { return d.api.Serve(ctx, ln) })
	if d.cfg.MetricsListen != "" {
		mln, err := metrics.Listen(d.cfg.MetricsListen)
		if err != nil {
			g.Stop()
			return err
		}
		g.Go("metrics", func(ctx context.Context) error { return metrics.Serve(ctx, mln, d.metrics) })
	}
	for _, s := range d.services {
		g.Go(s.Name(), s.Run)
	}

	<-gctx.Done()
	if err := g.Err(); err != nil {
		d.log.Error("subsystem failed; stopping", "err", err)
	}
	stopped, runErr := g.StopWithin(d.cfg.ShutdownGrace)
	if !stopped {
		d.log.Warn("subsystems did not stop within the shutdown grace; exiting anyway", "grace", d.cfg.ShutdownGrace)
	}
	os.Remove(d.cfg.Socket)
	d.log.Info("patchringd stopped")
	return runErr
}

// metricSources hands the parts that are on to the metrics.
func (d *Daemon) metricSources() metrics.Sources {
	var src metrics.Sources
	if d.inv != nil {
		src.Inventory = d.inv
	}
	if d.pol != nil {
		src.Policy = d.pol
	}
	if d.engine != nil {
		src.Engine = d.engine
	}
	if d.reboot != nil {
		src.Reboot = d.reboot
	}
	if d.aptPx != nil {
		src.AptProxy = d.aptPx
	}
	return src
}

// Status is the agent's status as caller c sees it (GET /status).
func (d *Daemon) Status(ctx context.Context, c apicall.Caller) apitypes.Status {
	st := apitypes.Status{
		NodeID:    d.ID(),
		Hostname:  d.hostname,
		Version:   version.Version,
		Started:   d.started,
		Uptime:    apitypes.Duration(time.Since(d.started).Round(time.Second)),
		StateDir:  d.cfg.StateDir,
		Socket:    d.cfg.Socket,
		StartedAt: d.starts,
		Caller:    apitypes.Caller{UID: c.UID, Admin: c.Admin, Can: "read"},
	}
	if !c.Known {
		st.Caller.UID = -1
	}
	if c.Admin {
		st.Caller.Can = "read-write"
	}
	schema, _ := d.db.Schema()
	st.Subsystems = append(st.Subsystems, apitypes.SubsystemStatus{
		Name: "state", State: "ok",
		Summary: fmt.Sprintf("bbolt %s, schema %d", d.db.Path(), schema),
	})
	if d.content != nil {
		used, reserved, limit := d.content.Usage()
		st.Subsystems = append(st.Subsystems, contentStatus(used, reserved, limit, d.cfg.Content.MaxSize))
	}
	for _, rep := range d.reporters {
		st.Subsystems = append(st.Subsystems, rep.Status())
	}
	return st
}

// contentStatus is the status line of the content store: what it holds
// and reserves against its cap, and where the cap comes from
// (content.max_size, or the default share of the file system).
func contentStatus(used, reserved, limit int64, setting string) apitypes.SubsystemStatus {
	from := "content.max_size: " + setting
	if setting == "" {
		from = "content.max_size unset: default share of the file system"
	}
	capText := ", no cap"
	if limit > 0 {
		capText = " of " + humanBytes(limit)
	}
	return apitypes.SubsystemStatus{
		Name: "content", State: "ok",
		Summary: fmt.Sprintf("%s used, %s reserved%s (%s)", humanBytes(used), humanBytes(reserved), capText, from),
		Details: map[string]string{
			"used_bytes": strconv.FormatInt(used, 10), "reserved_bytes": strconv.FormatInt(reserved, 10),
			"max_bytes": strconv.FormatInt(limit, 10), "max_size": setting,
		},
	}
}

// humanBytes writes n in binary units, e.g. "1.5 GiB".
func humanBytes(n int64) string {
	const unit = 1 << 10
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
