package main

import (
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

// BenchmarkDaemonIdle measures a real patchringd after its first
// inventory, idle: resident memory and CPU share over 10 seconds.
func BenchmarkDaemonIdle(b *testing.B) {
	var rss int64
	var cpuPct float64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		p := startDaemonB(b, dir)
		// Let the first scan finish and the heap settle.
		time.Sleep(3 * time.Second)
		_, cpu0 := procStat(b, p.cmd.Process.Pid)
		start := time.Now()
		time.Sleep(10 * time.Second)
		r, cpu1 := procStat(b, p.cmd.Process.Pid)
		rss = r
		cpuPct = 100 * float64(cpu1-cpu0) / float64(time.Since(start))
		p.cmd.Process.Signal(unix.SIGTERM)
		<-p.done
	}
	b.ReportMetric(float64(rss)/(1<<20), "daemon_idle_rss@MB")
	b.ReportMetric(cpuPct, "daemon_idle_cpu_pct@%")
}
