package localapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/ipc"
)

// Limits bound what local users can hold open. Root (uid 0) is exempt
// from the connection caps, so an administrator always gets in.
type Limits struct {
	// ConnsPerUID is how many connections one uid other than root may hold
	// open; zero means DefaultConnsPerUID.
	ConnsPerUID int
	// Conns is how many connections all uids other than root may hold
	// open together; zero means DefaultConns.
	Conns int
	// ReadHeaderTimeout is how long a client has to send a request's
	// headers; zero means 10 seconds.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a connection may wait between requests; zero
	// means 30 seconds.
	IdleTimeout time.Duration
}

// Defaults of Limits.
const (
	DefaultConnsPerUID = 32
	DefaultConns       = 256
)

func (l Limits) normalized() Limits {
	if l.ConnsPerUID <= 0 {
		l.ConnsPerUID = DefaultConnsPerUID
	}
	if l.Conns <= 0 {
		l.Conns = DefaultConns
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 30 * time.Second
	}
	return l
}

// unknownUID counts the connections whose peer credentials are unknown.
const unknownUID = -1

// limitListener accepts connections within the caps of Limits and turns
// the others away at once with a short 429 answer, so a flood of idle
// connections costs the daemon no open files beyond the caps.
type limitListener struct {
	net.Listener
	s   *Server
	lim Limits

	mu    sync.Mutex
	perID map[int]int
	total int // all but root's

	refused atomic.Int64
	lastLog atomic.Int64 // unix seconds of the last "refused" log line
}

// limitedConn is an accepted connection with its caller; Close gives its
// slot back.
type limitedConn struct {
	net.Conn
	caller Caller
	once   sync.Once
	l      *limitListener
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.caller) })
	return err
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// The caps are checked on the kernel's uid alone: looking up group
		// membership waits until the connection is admitted.
		var caller Caller
		uid := unknownUID
		if cred, err := ipc.PeerCred(c); err == nil {
			caller, uid = Caller{Cred: cred, Known: true}, cred.UID
		} else {
			l.s.log.Debug("local api: unknown peer", "err", err)
		}
		if why := l.take(uid); why != "" {
			l.turnAway(c, uid, why)
			continue
		}
		if caller.Known {
			caller.Admin = l.s.isAdmin(uid)
		}
		return &limitedConn{Conn: c, caller: caller, l: l}, nil
	}
}

// take reserves a slot for uid or says why there is none.
func (l *limitListener) take(uid int) string {
	if uid == 0 {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.perID[uid] >= l.lim.ConnsPerUID:
		return fmt.Sprintf("too many connections from uid %d (at most %d at once); close some and try again", uid, l.lim.ConnsPerUID)
	case l.total >= l.lim.Conns:
		return fmt.Sprintf("too many connections from local users (at most %d at once); try again later", l.lim.Conns)
	}
	l.perID[uid]++
	l.total++
	return ""
}

func (l *limitListener) release(c Caller) {
	uid := unknownUID
	if c.Known {
		uid = c.Cred.UID
	}
	if uid == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perID[uid]--; l.perID[uid] <= 0 {
		delete(l.perID, uid)
	}
	l.total--
}

// turnAway answers c with 429 and the reason, without waiting on a slow
// reader, and closes it.
func (l *limitListener) turnAway(c net.Conn, uid int, why string) {
	n := l.refused.Add(1)
	if now := time.Now().Unix(); l.lastLog.Swap(now) != now { // at most one line a second
		l.s.log.Warn("local api: connection refused", "uid", uid, "reason", why, "refused_total", n)
	}
	body := fmt.Sprintf(`{"error":%q,"code":%q}`+"\n", why, apitypes.CodeTooMany)
	_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		http.StatusTooManyRequests, http.StatusText(http.StatusTooManyRequests), len(body), body)
	_ = c.Close()
}

// Refused returns how many connections were turned away for being over a
// cap since the server started.
func (s *Server) Refused() int64 {
	s.mu.RLock()
	l := s.ll
	s.mu.RUnlock()
	if l == nil {
		return 0
	}
	return l.refused.Load()
}

// callerOf returns the caller the listener identified for c.
func callerOf(c net.Conn) (Caller, error) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return Caller{}, errors.New("not a connection of the local API's listener")
	}
	return lc.caller, nil
}
