// Command flood is a local user misusing patchringd's local API, for
// TestLocalAPIFloodedByAUser: it opens event streams (reading only each
// one's status line) and idle connections, keeps them all open, prints
// what it got, then keeps connecting and disconnecting until its stdin
// closes.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	sock := flag.String("socket", "", "patchringd's socket")
	streams := flag.Int("streams", 500, "event streams to open")
	idle := flag.Int("idle", 5000, "idle connections to open")
	flag.Parse()
	var conns []net.Conn
	ok, refused := 0, 0
	for range *streams {
		c, err := dial(*sock)
		if err != nil {
			fmt.Printf("fail dial: %v\n", err)
			os.Exit(1)
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
	for range *idle {
		c, err := dial(*sock)
		if err != nil {
			fmt.Printf("fail dial: %v\n", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Printf("ready streams=%d refused=%d conns=%d\n", ok, refused, len(conns))

	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := dial(*sock)
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
	for _, c := range conns {
		c.Close()
	}
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
