package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want map[string]string
	}{
		{"os-release.debian", map[string]string{"ID": "debian", "VERSION_CODENAME": "bookworm", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "VERSION_ID": "12"}},
		{"os-release.rhel", map[string]string{"ID": "rhel", "ID_LIKE": "fedora", "VERSION_ID": "9.3", "REDHAT_BUGZILLA_PRODUCT_VERSION": "9.3"}},
		{"os-release.odd", map[string]string{
			"NAME": "Single Quoted OS", "ID_LIKE": "ubuntu debian", "PRETTY_NAME": "Odd \"Quoted\" OS $HOME \\ `tick`",
			"VERSION_ID": "1.0 beta", "EMPTY": "", "VARIANT": "Server Edition # trailing comment-like text",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := parseOSRelease(readFixture(t, tt.file))
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for k := range got {
				if strings.ContainsAny(k, " #=") || k == "" {
					t.Errorf("bad key %q parsed", k)
				}
			}
		})
	}
}

func TestParseCPUInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file       string
		want       CPU
		hypervisor bool
	}{
		{"cpuinfo.2socket", CPU{Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", Vendor: "GenuineIntel", Sockets: 2, Cores: 2, Threads: 4, MHz: 2100}, false},
		{"cpuinfo.arm64-vm", CPU{Model: "Amazon Graviton", Vendor: "0x41", Sockets: 1, Cores: 2, Threads: 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := parseCPUInfo(readFixture(t, tt.file))
			if got.CPU != tt.want || got.Hypervisor != tt.hypervisor {
				t.Fatalf("got %+v hypervisor=%v, want %+v hypervisor=%v", got.CPU, got.Hypervisor, tt.want, tt.hypervisor)
			}
		})
	}
	if !parseCPUInfo([]byte("processor : 0\nflags : fpu hypervisor sse\n")).Hypervisor {
		t.Fatal("hypervisor flag not seen")
	}
}

func TestParseMeminfo(t *testing.T) {
	t.Parallel()
	m := parseMeminfo([]byte("MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:   10000000 kB\nSwapTotal:             0 kB\nSwapFree: 5 kB\nHugePages_Total:       0\nbroken line\n"))
	want := Memory{TotalBytes: 16318480 * 1024, AvailableBytes: 10000000 * 1024, SwapFreeBytes: 5 * 1024}
	if m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
}

func TestMountinfoRealFilesystems(t *testing.T) {
	t.Parallel()
	entries, err := parseMountinfo(readFixture(t, "mountinfo.docker"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range realFilesystems(entries) {
		got = append(got, e.Mountpoint+" "+e.FSType+" "+e.Source)
	}
	want := []string{"/ overlay overlay", "/etc/resolv.conf ext4 /dev/sda1", "/mnt/my data xfs /dev/sdb1", "/srv/nfs nfs4 server:/export"}
	if !slices.Equal(got, want) {
		t.Fatalf("real filesystems:\n got %q\nwant %q", got, want)
	}
	if !entries[6].ReadOnly {
		t.Fatal("ro mount not seen")
	}
	if _, err := parseMountinfo([]byte("1 2 3:4 / /x rw\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed mountinfo: %v", err)
	}
}

func TestParseRoutes(t *testing.T) {
	t.Parallel()
	v4, err := parseRouteV4(readFixture(t, "route.v4"))
	if err != nil {
		t.Fatal(err)
	}
	want4 := []Route{
		{Family: "ipv4", Interface: "eth0", Gateway: "192.168.1.1", Metric: 100},
		{Family: "ipv4", Interface: "wlan0", Gateway: "192.168.1.254", Metric: 600},
		{Family: "ipv4", Interface: "tun0", Metric: 50},
	}
	if !reflect.DeepEqual(v4, want4) {
		t.Fatalf("v4 = %+v\nwant %+v", v4, want4)
	}
	v6, err := parseRouteV6(readFixture(t, "route.v6"))
	if err != nil {
		t.Fatal(err)
	}
	want6 := []Route{{Family: "ipv6", Interface: "eth0", Gateway: "fe80::1", Metric: 1024}}
	if !reflect.DeepEqual(v6, want6) {
		t.Fatalf("v6 = %+v\nwant %+v", v6, want6)
	}
	if _, err := parseRouteV4([]byte("hdr\neth0 zz\n")); err == nil {
		t.Fatal("malformed route accepted")
	}
	if _, err := parseRouteV6([]byte("00 00\n")); err == nil {
		t.Fatal("malformed ipv6 route accepted")
	}
}

func TestParseMaps(t *testing.T) {
	t.Parallel()
	got := parseMaps(readFixture(t, "maps.deleted"))
	want := []string{
		"/usr/sbin/sshd",
		"/usr/lib/x86_64-linux-gnu/libc.so.6;65a3f1e2",
		"/usr/lib/x86_64-linux-gnu/lib with space.so",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("deleted code:\n got %q\nwant %q", got, want)
	}
	if parseMaps([]byte("7f-8f r-xp 0 fd:01 1 /usr/lib/libz.so.1\n")) != nil {
		t.Fatal("a live mapping reported")
	}
}

func TestUnitFromCgroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, unit string
		user           bool
	}{
		{"v2 service", "0::/system.slice/ssh.service\n", "ssh.service", false},
		{"v2 session", "0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope", false},
		{"v2 user service", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service\n", "pipewire.service", true},
		{"v1 name=systemd", "12:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n", "cron.service", false},
		{"root cgroup", "0::/\n", "", false},
		{"garbage", "nonsense", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, user := unitFromCgroup([]byte(tt.in))
			if unit != tt.unit || user != tt.user {
				t.Fatalf("got %q user=%v, want %q user=%v", unit, user, tt.unit, tt.user)
			}
		})
	}
}

func TestClassifyVulnFixtures(t *testing.T) {
	t.Parallel()
	want := map[string]VulnStatus{
		"meltdown": VulnNotAffected, "spectre_v1": VulnMitigated, "spectre_v2": VulnMitigated,
		"mds": VulnVulnerable, "srbds": VulnVulnerable, "itlb_multihit": VulnUnknown, "l1tf": VulnMitigated,
	}
	for name, status := range want {
		if got := classifyVuln(string(readFixture(t, "vulnerabilities/"+name))); got != status {
			t.Errorf("%s: %s, want %s", name, got, status)
		}
	}
}

func TestParseEFIBool(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   []byte
		want bool
		err  bool
	}{
		{[]byte{6, 0, 0, 0, 1}, true, false},
		{[]byte{6, 0, 0, 0, 0}, false, false},
		{[]byte{6, 0, 0, 0}, false, true},
		{[]byte{6, 0, 0, 0, 2}, false, true},
	} {
		got, err := parseEFIBool(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("parseEFIBool(%v) = %v, %v", tt.in, got, err)
		}
	}
}

func TestParseRPMQuery(t *testing.T) {
	t.Parallel()
	pkgs, err := parseRPMQuery(readFixture(t, "rpm-qa.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 7 {
		t.Fatalf("got %d packages, want 7 (gpg-pubkey skipped)", len(pkgs))
	}
	ssl := pkgs[4]
	if ssl.Name != "openssl-libs" || ssl.Version != "1:3.0.7-24.el9" || ssl.Source != "openssl" || ssl.SourceVersion != "3.0.7-24.el9" || ssl.InstalledAt.Unix() != 1700000200 {
		t.Fatalf("openssl-libs = %+v", ssl)
	}
	if pip := pkgs[6]; pip.Source != "python-pip" || !pip.InstalledAt.IsZero() {
		t.Fatalf("pip = %+v", pip)
	}
	k := kernels(pkgs, "5.14.0-362.8.1.el9_3.x86_64")
	if k.Newest != "5.14.0-427.13.1.el9_4.x86_64" || !k.RunningInstalled || len(k.Installed) != 3 {
		t.Fatalf("kernels = %+v", k)
	}
	var r Reboot
	kernelReboot(&r, k, "none")
	if !r.Required || !strings.Contains(r.Reasons[0], "not the newest installed 5.14.0-427.13.1.el9_4.x86_64") {
		t.Fatalf("reboot = %+v", r)
	}
	var gone Reboot
	kernelReboot(&gone, kernels(pkgs, "5.14.0-284.11.1.el9_2.x86_64"), "none")
	if !gone.Required || !strings.Contains(gone.Reasons[0], "no longer installed") {
		t.Fatalf("rpm running kernel removed: %+v", gone)
	}
	if _, err := parseRPMQuery([]byte("bash\t1\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed rpm output: %v", err)
	}
}

func TestDebianKernels(t *testing.T) {
	t.Parallel()
	items := []Package{
		{Manager: "dpkg", Name: "linux-image-amd64", Version: "6.1.99-1", Status: "installed"},
		{Manager: "dpkg", Name: "linux-image-6.1.0-18-amd64", Version: "6.1.76-1", Status: "installed"},
		{Manager: "dpkg", Name: "linux-image-6.1.0-21-amd64", Version: "6.1.90-1", Status: "installed"},
		{Manager: "dpkg", Name: "linux-image-6.1.0-9-amd64", Version: "6.1.27-1", Status: "config-files"},
		{Manager: "dpkg", Name: "linux-image-unsigned-6.5.0-14-generic", Version: "6.5.0-14.14", Status: "installed"},
	}
	k := kernels(items, "6.1.0-18-amd64")
	var rel []string
	for _, kp := range k.Installed {
		rel = append(rel, kp.Release)
	}
	if !slices.Equal(rel, []string{"6.5.0-14-generic", "6.1.0-21-amd64", "6.1.0-18-amd64"}) || !k.RunningInstalled || k.Newest != "6.5.0-14-generic" {
		t.Fatalf("kernels = %+v", k)
	}
	for _, tt := range []struct {
		name      string
		k         Kernels
		container string
		required  bool
	}{
		{"newer installed", k, "none", true},
		{"container", k, "docker", false},
		{"running is newest", kernels(items[:3], "6.1.0-21-amd64"), "none", false},
		{"self-built kernel on dpkg", kernels(items[:3], "6.1.0-9-amd64"), "none", false},
		{"no kernels (container image)", kernels(nil, "6.1.0-9-amd64"), "none", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r Reboot
			kernelReboot(&r, tt.k, tt.container)
			if r.Required != tt.required {
				t.Fatalf("required = %v (%v), want %v", r.Required, r.Reasons, tt.required)
			}
		})
	}
}

func FuzzParseOSRelease(f *testing.F) {
	for _, name := range []string{"os-release.debian", "os-release.rhel", "os-release.odd"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range parseOSRelease(data) {
			if k == "" || strings.ContainsAny(k, " \t\"'\n") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func FuzzProcFormats(f *testing.F) {
	for _, name := range []string{"mountinfo.docker", "route.v4", "route.v6", "maps.deleted", "cpuinfo.2socket", "rpm-qa.txt"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if entries, err := parseMountinfo(data); err == nil {
			for _, e := range realFilesystems(entries) {
				if pseudoFS[e.FSType] && e.FSType != "overlay" {
					t.Fatalf("pseudo filesystem %q kept", e.FSType)
				}
			}
		}
		if routes, err := parseRouteV4(data); err == nil {
			for _, r := range routes {
				if r.Family != "ipv4" || r.Interface == "" {
					t.Fatalf("bad route %+v", r)
				}
			}
		}
		_, _ = parseRouteV6(data)
		for _, p := range parseMaps(data) {
			if !strings.HasPrefix(p, "/") || ignoredMapping(p) {
				t.Fatalf("bad deleted path %q", p)
			}
		}
		ci := parseCPUInfo(data)
		if ci.CPU.Threads > 0 && (ci.CPU.Sockets < 1 || ci.CPU.Cores < 1) {
			t.Fatalf("impossible counts %+v", ci.CPU)
		}
		_ = parseMeminfo(data)
		_, _ = unitFromCgroup(data)
		if pkgs, err := parseRPMQuery(data); err == nil {
			for _, p := range pkgs {
				if p.Name == "" || p.Version == "" || p.Manager != "rpm" {
					t.Fatalf("bad rpm package %+v", p)
				}
			}
		}
	})
}
