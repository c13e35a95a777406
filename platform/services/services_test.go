package services

import (
	"slices"
	"strings"
	"testing"
)

const sampleMaps = `55d0c8a00000-55d0c8a02000 r--p 00000000 08:01 1234 /usr/bin/sleep
7f1e2c000000-7f1e2c001000 r--p 00000000 08:01 99 /usr/lib/libfoo.so.1 (deleted)
7f1e2c001000-7f1e2c002000 r-xp 00001000 08:01 99 /usr/lib/libfoo.so.1 (deleted)
7f1e2c002000-7f1e2c003000 r-xp 00002000 08:01 99 /usr/lib/libfoo.so.1 (deleted)
7f1e2c003000-7f1e2c004000 rw-s 00000000 00:05 7 /dev/zero (deleted)
7f1e2c004000-7f1e2c005000 r-xp 00000000 00:00 0 /usr/lib/with space.so (deleted)
7f1e2c005000-7f1e2c006000 r-xp 00000000 00:00 0 [vdso]
`

func TestDeletedMappings(t *testing.T) {
	t.Parallel()
	got := DeletedMappings([]byte(sampleMaps))
	want := []string{"/usr/lib/libfoo.so.1", "/usr/lib/with space.so"}
	if !slices.Equal(got, want) {
		t.Errorf("DeletedMappings = %q, want %q", got, want)
	}
	if got := DeletedMappings([]byte("garbage (deleted)\n\n")); got != nil {
		t.Errorf("garbage: %q", got)
	}
}

func TestUnitFromCgroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cg, unit string
		scope, user    bool
	}{
		{"system service", "0::/system.slice/food.service\n", "food.service", false, false},
		{"session scope", "0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope", true, false},
		{"user unit", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service\n", "pipewire.service", false, true},
		{"v1 name=systemd", "12:cpu:/x\n1:name=systemd:/system.slice/cron.service\n", "cron.service", false, false},
		{"none", "0::/\n", "", false, false},
		{"init scope", "0::/init.scope\n", "init.scope", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			unit, scope, user := UnitFromCgroup([]byte(tc.cg))
			if unit != tc.unit || scope != tc.scope || user != tc.user {
				t.Errorf("UnitFromCgroup = %q scope %v user %v, want %q %v %v", unit, scope, user, tc.unit, tc.scope, tc.user)
			}
		})
	}
}

func TestInRoot(t *testing.T) {
	t.Parallel()
	m := New(Options{Root: "/dev/shm/x/root/"})
	for in, want := range map[string]string{"/dev/shm/x/root/usr/lib/a.so": "/usr/lib/a.so", "/dev/shm/x/root": "/", "/dev/shm/x/rootless/a": "", "/usr/lib/a.so": ""} {
		got, ok := m.inRoot(in)
		if got != want || ok != (want != "") {
			t.Errorf("inRoot(%s) = %q %v, want %q", in, got, ok, want)
		}
	}
	if got, _ := New(Options{}).inRoot("/usr/x"); got != "/usr/x" {
		t.Errorf("root /: %q", got)
	}
}

func TestRestartRefusesOddNames(t *testing.T) {
	t.Parallel()
	m := New(Options{})
	for _, s := range []string{"", "../../bin/sh", "-x", "a\x00b"} {
		if err := m.Restart(t.Context(), ManagerSysV, s); err == nil || !strings.Contains(err.Error(), "not a service name") {
			t.Errorf("Restart(%q) = %v", s, err)
		}
	}
}

func FuzzDeletedMappings(f *testing.F) {
	f.Add([]byte(sampleMaps))
	f.Add([]byte("0-1 r-xp 0 0:0 0  (deleted)"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range DeletedMappings(data) {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("not absolute: %q", p)
			}
		}
	})
}

func FuzzUnitFromCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/food.service\n"))
	f.Add([]byte("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n"))
	f.Add([]byte("1:name=systemd:/a.scope/b.service"))
	f.Fuzz(func(t *testing.T, data []byte) {
		unit, scope, _ := UnitFromCgroup(data)
		if scope && !strings.HasSuffix(unit, ".scope") {
			t.Fatalf("scope without a .scope unit: %q", unit)
		}
		if unit != "" && !strings.HasSuffix(unit, ".service") && !strings.HasSuffix(unit, ".scope") {
			t.Fatalf("unit %q", unit)
		}
	})
}
