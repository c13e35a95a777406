// Package flood is a local user misusing patchringd's local API, for the
// flood tests of the daemon and of its reboot API: it opens event streams
// (reading only each one's status line) and idle connections, keeps them
// all open, prints what it got, then keeps connecting and disconnecting
// until its input closes.
package flood

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Run floods the local API at the unix socket sock with streams event
// streams and idle idle connections. Once they are open it writes one line
// to out, "ready streams=S refused=R conns=C refusal=TEXT" (streams the
// server accepted, streams it refused with 429, connections held, and the
// refusal's text), then churns connections until in reaches EOF. It
// returns the process's exit code.
func Run(sock string, streams, idle int, in io.Reader, out io.Writer) int {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ok, refused := 0, 0
	for range streams {
		c, err := dial(sock)
		if err != nil {
			fmt.Fprintf(out, "fail dial: %v\n", err)
			return 1
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /v1/reboot/events HTTP/1.1\r\nHost: patchringd\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		switch {
		case strings.HasPrefix(line, "HTTP/1.1 200"):
			ok++
		case strings.HasPrefix(line, "HTTP/1.1 429"):
			refused++
		}
	}
	for range idle {
		c, err := dial(sock)
		if err != nil {
			fmt.Fprintf(out, "fail dial: %v\n", err)
			return 1
		}
		conns = append(conns, c)
	}
	// One of the last, surely refused: its answer says why.
	var refusal string
	if len(conns) > 0 {
		c := conns[len(conns)-1]
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := io.ReadAll(io.LimitReader(c, 4096)); err == nil {
			if _, body, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
				refusal = strings.TrimSpace(body)
			}
		}
	}
	fmt.Fprintf(out, "ready streams=%d refused=%d conns=%d refusal=%s\n", ok, refused, len(conns), refusal)

	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, in); close(stop) }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := dial(sock)
				if err != nil {
					continue
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
	wg.Wait()
	return 0
}

// dial connects to the socket, retrying while the listen backlog is full
// (EAGAIN on a unix socket: the server accepts slower than this client
// connects on a loaded machine), for at most 30 seconds.
func dial(sock string) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Report is what a flooding client said once its connections were open.
type Report struct {
	Streams, Refused, Conns int    // as in Run's "ready" line
	Line                    string // the whole line (the refusal's text included)
}

// Start starts cmd, a flooding client that calls Run made with
// exec.CommandContext(ctx, ...), and returns its report once it is ready.
// The client churns connections until the test ends; then its input is
// closed and it is waited for (an error is the test's unless ctx ended).
func Start(t testing.TB, ctx context.Context, cmd *exec.Cmd) Report {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("flooding client: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("flooding client said %q: %v", line, err)
	}
	t.Logf("flooding client: %s", strings.TrimSpace(line))
	r := Report{Line: line}
	if _, err := fmt.Sscanf(line, "ready streams=%d refused=%d conns=%d", &r.Streams, &r.Refused, &r.Conns); err != nil {
		t.Fatalf("flooding client said %q", line)
	}
	return r
}
