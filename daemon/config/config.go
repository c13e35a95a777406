// Package config loads patchringd's configuration: a YAML file whose every
// setting is also a command-line flag. Unknown keys and bad values are
// errors that name the file, the line and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/patchring/patchring/platform/paths"
)

// Config is patchringd's configuration.
type Config struct {
	StateDir      string        `yaml:"state_dir"`
	Socket        string        `yaml:"socket"`
	AdminGroup    string        `yaml:"admin_group"`
	LogFormat     string        `yaml:"log_format"`
	LogLevel      string        `yaml:"log_level"`
	MetricsListen string        `yaml:"metrics_listen"`
	Hostname      string        `yaml:"hostname"`
	Site          string        `yaml:"site"`
	Tags          []string      `yaml:"tags"`
	Inventory     Inventory     `yaml:"inventory"`
	Policy        Policy        `yaml:"policy"`
	Apt           Apt           `yaml:"apt"`
	Gossip        Gossip        `yaml:"gossip"`
	P2P           P2P           `yaml:"p2p"`
	Reboot        Reboot        `yaml:"reboot"`
	Content       Content       `yaml:"content"`
	Report        Report        `yaml:"report"`
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// MaxProcs caps the cores the agent's Go code runs on at once
	// (GOMAXPROCS); 0 leaves Go's default (every core). The GOMAXPROCS
	// environment variable, when set, wins.
	MaxProcs int `yaml:"max_procs"`
}

// Inventory configures the inventory loop.
type Inventory struct {
	Interval time.Duration `yaml:"interval"`
	Root     string        `yaml:"root"` // filesystem root to inventory; "/" on a real host
}

// Policy configures where signed policy comes from.
type Policy struct {
	Origin          string        `yaml:"origin"`           // base URL of the TUF repository
	RootFile        string        `yaml:"root_file"`        // trusted root.json installed with the agent
	RefreshInterval time.Duration `yaml:"refresh_interval"` // how often to refresh
}

// Apt configures the apt backend. Root and AptConfig point it at a
// sandboxed package root instead of the host (tests and the demo).
type Apt struct {
	Enabled   bool   `yaml:"enabled"`
	Root      string `yaml:"root"`
	AptConfig string `yaml:"apt_config"`
	// Manager is the package manager the engine drives: "auto" (or "")
	// picks it from the machine (a dpkg database: apt; an rpm database
	// and dnf: dnf), or "apt" or "dnf".
	Manager string `yaml:"manager"`
	// DnfArgs are global dnf options (e.g. -c CONF, --releasever) for a
	// sandboxed root; Root is passed as --installroot.
	DnfArgs []string `yaml:"dnf_args"`
	// CheckInterval is how often the engine evaluates the policy against
	// the available updates; RefreshInterval how often it runs
	// apt-get update.
	CheckInterval   time.Duration `yaml:"check_interval"`
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// Proxy is the verifying apt proxy every apt client of the node goes
	// through (docs/APT.md).
	Proxy AptProxy `yaml:"proxy"`
}

// AptProxy configures the agent's apt proxy. Off by default.
type AptProxy struct {
	Enabled bool `yaml:"enabled"`
	// Listen is a loopback host:port; default 127.0.0.1:3142.
	Listen string `yaml:"listen"`
	// Snippet is the apt.conf.d file the agent writes while the proxy
	// runs (and removes when it is disabled or stopped); default
	// <apt root>/etc/apt/apt.conf.d/80patchring-proxy. "none" writes no
	// file (the engine's own apt runs still use the proxy).
	Snippet string `yaml:"snippet"`
}

// Gossip configures the memberlist pool of the site.
type Gossip struct {
	Enabled bool     `yaml:"enabled"`
	Listen  string   `yaml:"listen"` // host:port
	Seeds   []string `yaml:"seeds"`
	KeyFile string   `yaml:"key_file"`
	Label   string   `yaml:"label"`
	// Discovery finds the site's members by an authenticated UDP
	// broadcast beacon on the gossip interface's subnet (p2p/discovery),
	// in addition to the seeds.
	Discovery     bool `yaml:"discovery"`
	DiscoveryPort int  `yaml:"discovery_port"`
	// DiscoveryTargets, if set, are where the beacon goes (IPv4 broadcast
	// or unicast addresses) instead of the gossip interface's broadcast
	// address.
	DiscoveryTargets []string `yaml:"discovery_targets"`
}

// DefaultGossipPort and DefaultDiscoveryPort are the ports used when
// gossip.listen and gossip.discovery_port are not set.
const (
	DefaultGossipPort    = 7946
	DefaultDiscoveryPort = 7947
)

// P2P configures the libp2p payload exchange.
type P2P struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"` // multiaddr
}

// Report configures how often the node signs a console record and, when
// it is its site's reporter, sends the site's records (the console itself
// is named by the signed policy, never here).
type Report struct {
	Interval time.Duration `yaml:"interval"` // mean wait between rounds (jittered by +-50%)
}

// Content configures the content store of payloads (under the state dir).
type Content struct {
	// MaxSize caps the store; see ParseStoreSize. Empty means
	// ContentDefaultPercent of the file system holding the state dir.
	// Least recently used payloads are evicted to stay under it.
	MaxSize string `yaml:"max_size"`
}

// Reboot configures how the node reboots.
type Reboot struct {
	// Command overrides the reboot command (e.g. a script in tests).
	Command []string `yaml:"command"`
	// Headless forces headless behaviour (no user session prompts).
	Headless bool `yaml:"headless"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	d := paths.For()
	return Config{
		StateDir:      d.StateDir,
		Socket:        d.Socket,
		AdminGroup:    "",
		LogFormat:     "text",
		LogLevel:      "info",
		ShutdownGrace: 10 * time.Second,
		MaxProcs:      1,
		Inventory:     Inventory{Interval: time.Hour, Root: "/"},
		Policy:        Policy{RefreshInterval: 5 * time.Minute},
		Report:        Report{Interval: 15 * time.Minute},
		Gossip:        Gossip{Label: "patchring", Discovery: true, DiscoveryPort: DefaultDiscoveryPort},
		Apt:           Apt{CheckInterval: 10 * time.Minute, RefreshInterval: time.Hour, Proxy: AptProxy{Listen: "127.0.0.1:3142"}},
	}
}

// DefaultFile is the configuration file read when none is named.
func DefaultFile() string { return paths.For().Config }

// BindFlags registers one flag per setting on fs, bound to c.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "directory of the agent's state (bbolt database, node key, content store)")
	fs.StringVar(&c.Socket, "socket", c.Socket, "path of the local API socket")
	fs.StringVar(&c.AdminGroup, "admin-group", c.AdminGroup, "local group whose members may administer the agent (root always may)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve Prometheus metrics on this loopback address (off when empty), e.g. 127.0.0.1:9273")
	fs.StringVar(&c.Hostname, "hostname", c.Hostname, "hostname to report (default: the OS hostname)")
	fs.StringVar(&c.Site, "site", c.Site, "site (LAN) this node belongs to")
	fs.StringSliceVar(&c.Tags, "tags", c.Tags, "tags for ring selection, comma separated")
	fs.DurationVar(&c.Inventory.Interval, "inventory-interval", c.Inventory.Interval, "how often to take a full inventory")
	fs.StringVar(&c.Inventory.Root, "inventory-root", c.Inventory.Root, "filesystem root to inventory")
	fs.StringVar(&c.Policy.Origin, "policy-origin", c.Policy.Origin, "base URL of the fleet's signed repository")
	fs.StringVar(&c.Policy.RootFile, "policy-root", c.Policy.RootFile, "trusted root.json of the fleet")
	fs.DurationVar(&c.Report.Interval, "report-interval", c.Report.Interval, "mean time between console report rounds (jittered)")
	fs.DurationVar(&c.Policy.RefreshInterval, "policy-refresh", c.Policy.RefreshInterval, "how often to refresh the signed policy")
	fs.BoolVar(&c.Apt.Enabled, "apt", c.Apt.Enabled, "manage packages with apt")
	fs.StringVar(&c.Apt.Root, "apt-root", c.Apt.Root, "sandboxed package root for apt/dpkg (empty: the host)")
	fs.StringVar(&c.Apt.AptConfig, "apt-config", c.Apt.AptConfig, "APT_CONFIG file for the sandboxed root")
	fs.DurationVar(&c.Apt.CheckInterval, "apt-check-interval", c.Apt.CheckInterval, "how often to evaluate the policy against available updates")
	fs.DurationVar(&c.Apt.RefreshInterval, "apt-refresh-interval", c.Apt.RefreshInterval, "how often to refresh apt's package indices")
	fs.BoolVar(&c.Apt.Proxy.Enabled, "apt-proxy", c.Apt.Proxy.Enabled, "run the verifying apt proxy and send the node's apt through it")
	fs.StringVar(&c.Apt.Proxy.Listen, "apt-proxy-listen", c.Apt.Proxy.Listen, "loopback host:port of the apt proxy")
	fs.StringVar(&c.Apt.Proxy.Snippet, "apt-proxy-snippet", c.Apt.Proxy.Snippet, `apt.conf.d file the agent writes for the proxy ("none": none)`)
	fs.BoolVar(&c.Gossip.Enabled, "gossip", c.Gossip.Enabled, "join the site's gossip pool")
	fs.StringVar(&c.Gossip.Listen, "gossip-listen", c.Gossip.Listen, "gossip address host:port")
	fs.StringSliceVar(&c.Gossip.Seeds, "gossip-seeds", c.Gossip.Seeds, "gossip seeds host:port, comma separated")
	fs.StringVar(&c.Gossip.KeyFile, "gossip-key-file", c.Gossip.KeyFile, "file holding the gossip keyring (base64 keys, primary first)")
	fs.StringVar(&c.Gossip.Label, "gossip-label", c.Gossip.Label, "gossip label of the fleet")
	fs.BoolVar(&c.Gossip.Discovery, "gossip-discovery", c.Gossip.Discovery, "find the site's gossip members by an authenticated UDP broadcast on the LAN (in addition to the seeds)")
	fs.IntVar(&c.Gossip.DiscoveryPort, "gossip-discovery-port", c.Gossip.DiscoveryPort, "UDP port of the LAN discovery beacon")
	fs.StringSliceVar(&c.Gossip.DiscoveryTargets, "gossip-discovery-targets", c.Gossip.DiscoveryTargets, "IPv4 addresses to send the discovery beacon to instead of the gossip interface's broadcast address, comma separated")
	fs.BoolVar(&c.P2P.Enabled, "p2p", c.P2P.Enabled, "share payloads with LAN peers over libp2p")
	fs.StringVar(&c.P2P.Listen, "p2p-listen", c.P2P.Listen, "libp2p listen multiaddr")
	fs.StringSliceVar(&c.Reboot.Command, "reboot-command", c.Reboot.Command, "command that reboots the machine (default: the OS's)")
	fs.BoolVar(&c.Reboot.Headless, "headless", c.Reboot.Headless, "treat this host as headless (automatic reboots in the policy's window)")
	fs.StringVar(&c.Content.MaxSize, "content-max-size", c.Content.MaxSize, "cap of the payload store: a size (20GiB, 500MB), a share of the state dir's disk (15%) or unlimited (default: 10% of that disk, at least 1GiB)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "how long to wait for work to finish on shutdown")
	fs.IntVar(&c.MaxProcs, "max-procs", c.MaxProcs, "cores the agent's own code runs on at once (0: every core); apt, dpkg and dnf are not limited")
}

// Load reads the YAML file at path into c, on top of what c holds. A
// missing file is an error wrapping fs.ErrNotExist.
func Load(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("config %s: file does not exist: %w", path, err)
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data, c)
}

// Parse decodes data (named name in errors) into c.
func Parse(name string, data []byte, c *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("config %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) == 0 {
		return nil
	}
	doc := root.Content[0]
	if err := checkKeys(name, doc, reflect.TypeOf(*c), ""); err != nil {
		return err
	}
	if err := doc.Decode(c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				// "line 2: cannot unmarshal ..." -> "FILE:2: cannot unmarshal ..."
				if rest, ok := strings.CutPrefix(e, "line "); ok {
					e = name + ":" + rest
				}
				msgs[i] = e
			}
			return fmt.Errorf("config %s", strings.Join(msgs, "; "))
		}
		return fmt.Errorf("config %s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c.Validate(name)
}

// checkKeys reports the first key of n that t does not have.
func checkKeys(name string, n *yaml.Node, t reflect.Type, prefix string) error {
	if t.Kind() != reflect.Struct {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s:%d: %s must be a mapping of settings", name, n.Line, orRoot(prefix))
	}
	fields := map[string]reflect.Type{}
	var allowed []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		allowed = append(allowed, tag)
	}
	sort.Strings(allowed)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("config %s:%d: unknown key %q in %s (allowed: %s)",
				name, k.Line, prefix+k.Value, orRoot(prefix), strings.Join(allowed, ", "))
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
			if err := checkKeys(name, v, ft, prefix+k.Value+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

func orRoot(prefix string) string {
	if prefix == "" {
		return "the top level"
	}
	return strings.TrimSuffix(prefix, ".")
}

// Validate checks values that decode but make no sense.
func (c *Config) Validate(name string) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config %s: %s: %s", name, key, fmt.Sprintf(format, args...))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return bad("log_format", "%q is not a log format; use text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level", "%q is not a level; use debug, info, warn or error", c.LogLevel)
	}
	if c.StateDir == "" {
		return bad("state_dir", "must not be empty")
	}
	if c.Socket == "" {
		return bad("socket", "must not be empty")
	}
	if c.Inventory.Interval < time.Minute && c.Inventory.Interval != 0 {
		return bad("inventory.interval", "%s is too short; use at least 1m (0 turns periodic scans off)", c.Inventory.Interval)
	}
	if c.Policy.RefreshInterval < time.Second {
		return bad("policy.refresh_interval", "%s is too short; use at least 1s", c.Policy.RefreshInterval)
	}
	if c.Report.Interval < time.Second {
		return bad("report.interval", "%s is too short; use at least 1s", c.Report.Interval)
	}
	if c.Policy.Origin != "" && c.Policy.RootFile == "" {
		return bad("policy.root_file", "must name the fleet's trusted root.json when policy.origin is set")
	}
	if c.Apt.Enabled && c.Apt.CheckInterval < time.Second {
		return bad("apt.check_interval", "%s is too short; use at least 1s", c.Apt.CheckInterval)
	}
	switch c.Apt.Manager {
	case "", "auto", "apt", "dnf":
	default:
		return bad("apt.manager", "%q is not a package manager; use auto, apt or dnf", c.Apt.Manager)
	}
	if c.Apt.Root != "" && c.Apt.AptConfig == "" && c.Apt.Manager != "dnf" {
		return bad("apt.apt_config", "must name the APT_CONFIG file of the sandboxed root %s", c.Apt.Root)
	}
	if c.Apt.Proxy.Enabled {
		host, _, err := net.SplitHostPort(c.Apt.Proxy.Listen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return bad("apt.proxy.listen", "%q must be a loopback host:port such as 127.0.0.1:3142 (the proxy serves this node only)", c.Apt.Proxy.Listen)
		}
	}
	if c.Gossip.Enabled && c.Gossip.KeyFile == "" {
		return bad("gossip.key_file", "is required when gossip is enabled: the pool is encrypted (one base64 key per line, private to root; create one with `patchring fleet keygen FILE`)")
	}
	if err := c.Gossip.validateDiscovery(); err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	if c.P2P.Enabled && !c.Gossip.Enabled {
		return bad("p2p.enabled", "payload sharing needs gossip (gossip.enabled): peers are admitted from the site's pool")
	}
	if _, err := ParseStoreSize(c.Content.MaxSize); err != nil {
		return bad("content.max_size", "%v", err)
	}
	if c.ShutdownGrace < 0 {
		return bad("shutdown_grace", "must not be negative")
	}
	if c.MaxProcs < 0 {
		return bad("max_procs", "must not be negative (0: every core)")
	}
	return nil
}

// validateDiscovery checks the LAN discovery settings (even when gossip is
// off, so a mistake shows before it is turned on).
func (g *Gossip) validateDiscovery() error {
	if g.DiscoveryPort < 1 || g.DiscoveryPort > 65535 {
		return fmt.Errorf("gossip.discovery_port: %d is not a UDP port; use 1-65535 (default %d)", g.DiscoveryPort, DefaultDiscoveryPort)
	}
	gossipPort := DefaultGossipPort
	if g.Listen != "" {
		h, p, err := net.SplitHostPort(g.Listen)
		if err != nil {
			return fmt.Errorf("gossip.listen: %q is not host:port: %v", g.Listen, err)
		}
		if h != "" && net.ParseIP(h) == nil {
			return fmt.Errorf("gossip.listen: %q: the host must be an IP address (or empty for every address), not a name", g.Listen)
		}
		if gossipPort, err = strconv.Atoi(p); err != nil || gossipPort < 0 || gossipPort > 65535 {
			return fmt.Errorf("gossip.listen: %q has no valid port", g.Listen)
		}
	}
	if g.Discovery && g.DiscoveryPort == gossipPort {
		return fmt.Errorf("gossip.discovery_port: %d is also the gossip port (gossip.listen); use another, e.g. %d", g.DiscoveryPort, DefaultDiscoveryPort)
	}
	for i, t := range g.DiscoveryTargets {
		a, err := netip.ParseAddr(strings.TrimSpace(t))
		if err != nil || !a.Unmap().Is4() || a.IsUnspecified() {
			return fmt.Errorf("gossip.discovery_targets[%d]: %q is not an IPv4 address (a subnet's broadcast address such as 10.1.255.255, or a host's)", i, t)
		}
	}
	return nil
}
