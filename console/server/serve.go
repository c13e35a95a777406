package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ListenConfig says where and how the console listens.
type ListenConfig struct {
	Addr     string // host:port
	CertFile string // TLS certificate and key; both or neither
	KeyFile  string
}

// CheckExposure enforces the console's access rule: it listens on a
// loopback address only, unless it serves TLS and has accounts.
func CheckExposure(addr string, tlsOn bool, accounts int) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || ip != nil && ip.IsLoopback()
	switch {
	case loopback:
		return nil
	case !tlsOn:
		return fmt.Errorf("listen address %s is not loopback: configure TLS (--tls-cert, --tls-key) to serve beyond this machine", addr)
	case accounts == 0:
		return fmt.Errorf("listen address %s is not loopback: create an account first (patchring console account add)", addr)
	}
	return nil
}

// Serve runs the console on cfg until ctx ends, then shuts down.
func Serve(ctx context.Context, s *Server, lc ListenConfig, log *slog.Logger) error {
	if (lc.CertFile == "") != (lc.KeyFile == "") {
		return errors.New("serve console: give both --tls-cert and --tls-key, or neither")
	}
	tlsOn := lc.CertFile != ""
	n, err := s.cfg.Store.CountAccounts(ctx)
	if err != nil {
		return fmt.Errorf("serve console: %w", err)
	}
	if err := CheckExposure(lc.Addr, tlsOn, n); err != nil {
		return fmt.Errorf("serve console: %w", err)
	}
	if n == 0 {
		log.Warn("no accounts yet: nobody can log in; create one with patchring console account add")
	}
	ln, err := net.Listen("tcp", lc.Addr)
	if err != nil {
		return fmt.Errorf("serve console: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() {
		if tlsOn {
			done <- srv.ServeTLS(ln, lc.CertFile, lc.KeyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	log.Info("console serving", "url", scheme+"://"+ln.Addr().String(), "store", s.cfg.Store.Dialect())
	select {
	case err := <-done:
		return fmt.Errorf("serve console: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-done
	return nil
}
