package main

import (
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// procStat returns a process's resident set size in bytes and its CPU time
// (user+system) from /proc.
func procStat(b *testing.B, pid int) (rss int64, cpu time.Duration) {
	b.Helper()
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	hz := int64(100) // USER_HZ on Linux
	cpu = time.Duration((utime + stime) * int64(time.Second) / hz)
	return rss, cpu
}

// idleFigures starts a real patchringd with extra flags, lets its first
// inventory finish and measures it idle: resident memory, and CPU share
// over 10 seconds.
func idleFigures(b *testing.B, extra ...string) (rssMB, cpuPct float64) {
	b.Helper()
	p := startDaemonB(b, b.TempDir(), extra...)
	// Let the first scan finish and the heap settle.
	time.Sleep(3 * time.Second)
	_, cpu0 := procStat(b, p.cmd.Process.Pid)
	start := time.Now()
	time.Sleep(10 * time.Second)
	rss, cpu1 := procStat(b, p.cmd.Process.Pid)
	cpuPct = 100 * float64(cpu1-cpu0) / float64(time.Since(start))
	p.cmd.Process.Signal(unix.SIGTERM)
	<-p.done
	return float64(rss) / (1 << 20), cpuPct
}

// BenchmarkDaemonIdle measures an idle agent: alone, and with its site's
// gossip pool and libp2p payload exchange running (the figures).
func BenchmarkDaemonIdle(b *testing.B) {
	keyFile := filepath.Join(b.TempDir(), "gossip.key")
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	for i := 0; i < b.N; i++ {
		rss, _ := idleFigures(b)
		b.ReportMetric(rss, "daemon_idle_rss_alone@MB")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		rss, cpu := idleFigures(b, "--gossip", "--gossip-listen", addr, "--gossip-key-file", keyFile,
			"--p2p", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
		b.ReportMetric(rss, "daemon_idle_rss@MB")
		b.ReportMetric(cpu, "daemon_idle_cpu_pct@%")
	}
}
