package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

// repoFleet reads the fleet document from a repository directory on this
// machine, afresh for every request (revocations take effect at once).
type repoFleet struct{ dir string }

var _ enroll.FleetSource = repoFleet{}

func (f repoFleet) Fleet(ctx context.Context) (*credential.Trust, error) {
	return tufrepo.FleetTrust(f.dir)
}

// issuingFlags configure an issuing service: `patchring ca serve`, or the
// one inside `patchring console serve`.
type issuingFlags struct {
	prefix                 string
	data, keyFile, passEnv string
	validity, grace        string
	ratePerMin             int
}

// add binds the flags, each name prefixed (console serve's are
// --issuer-*; ca serve's carry no prefix but --issuer-key).
func (f *issuingFlags) add(cmd *cobra.Command, prefix string) {
	f.prefix, f.validity, f.grace, f.ratePerMin = prefix, "30d", "7d", 60
	fl := cmd.Flags()
	fl.StringVar(&f.data, prefix+"data", "", "the issuing service's data directory (tokens, ledger issued.jsonl)")
	fl.StringVar(&f.keyFile, "issuer-key", "", "key file of the issuing key (role fleet-issuer)")
	fl.StringVar(&f.passEnv, prefix+"passphrase-env", defaultPassphraseEnv, "environment variable holding the issuing key's passphrase")
	fl.StringVar(&f.validity, prefix+"validity", f.validity, "lifetime of an issued credential")
	fl.StringVar(&f.grace, prefix+"renew-grace", f.grace, "how long after expiry a credential may still be renewed")
	fl.IntVar(&f.ratePerMin, prefix+"rate", f.ratePerMin, "enrollment and renewal requests per minute allowed from one client address")
}

// server checks the flags and the issuing key against the fleet document
// and builds the service's handler.
func (f *issuingFlags) server(ctx context.Context, fleet enroll.FleetSource, log *slog.Logger) (*enroll.Server, error) {
	val, err := policy.ParseDuration(f.validity)
	if err != nil || val < 10*time.Second {
		return nil, fmt.Errorf("--%svalidity %q: a duration such as 30d", f.prefix, f.validity)
	}
	gr, err := policy.ParseDuration(f.grace)
	if err != nil {
		return nil, fmt.Errorf("--%srenew-grace %q: %w", f.prefix, f.grace, err)
	}
	if f.ratePerMin <= 0 {
		return nil, fmt.Errorf("--%srate %d: must be positive", f.prefix, f.ratePerMin)
	}
	key, err := readIssuerKey(f.keyFile, os.Getenv(f.passEnv), f.passEnv)
	if err != nil {
		return nil, err
	}
	// The issuing key must be one the fleet document delegates: find out
	// now rather than at the first enrollment.
	tr, err := fleet.Fleet(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet document: %w", err)
	}
	if err := checkIssuer(tr, key); err != nil {
		return nil, err
	}
	store, err := enroll.OpenStore(f.data)
	if err != nil {
		return nil, err
	}
	return enroll.NewServer(enroll.ServerConfig{
		Store: store, DataDir: f.data, IssuerKey: key, Fleet: fleet, Validity: val, RenewGrace: gr,
		Rate: rateLimit(f.ratePerMin), Burst: max(f.ratePerMin/3, 5), Log: log,
	})
}

func newCaServeCmd(a *app) *cobra.Command {
	var (
		listen, repoDir, origin, rootFile string
		certFile, tlsKeyFile              string
		iss                               issuingFlags
	)
	listen = "127.0.0.1:8446"
	cmd := &cobra.Command{
		Use:   "serve --data DIR --issuer-key FILE (--repo DIR | --origin URL --root root.json) [--listen ADDR] [--cert FILE --key FILE]",
		Short: "Run the online issuing service: enroll nodes with tokens, renew their credentials",
		Long: `Run the issuing service until interrupted. It signs node credentials with an issuing
key (--issuer-key, a key file of role fleet-issuer) that the fleet CA delegated in
fleet.json, for nodes that present an enrollment token (patchring enroll-token create)
or a valid credential to renew. It checks every credential it issues, and every renewal,
against the fleet document: read from the repository with --repo, or fetched from the
origin through TUF with --origin and --root. Tokens and the ledger of what it issued
(DIR/issued.jsonl, read by patchring ca list --ledger) live in --data.

Without --cert/--key it serves plain HTTP and only on a loopback address (put a TLS
proxy in front, or give it a certificate). See docs/ENROLL.md.`,
		Example: `  patchring ca serve --data /var/lib/patchring-ca --issuer-key /etc/patchring-ca/fleet-issuer.json \
      --repo /srv/patchring --listen 0.0.0.0:8446 --cert ca.crt --key ca.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if iss.data == "" || iss.keyFile == "" {
				return errors.New("--data DIR and --issuer-key FILE are required")
			}
			if (repoDir == "") == (origin == "") {
				return errors.New("give the fleet document's source: --repo DIR or --origin URL (with --root root.json)")
			}
			if (certFile == "") != (tlsKeyFile == "") {
				return errors.New("--cert and --key go together")
			}
			log := slog.New(slog.NewTextHandler(a.Err, nil))
			var fleet enroll.FleetSource = repoFleet{dir: repoDir}
			if origin != "" {
				if rootFile == "" {
					return errors.New("--origin needs --root root.json (the fleet's trusted root)")
				}
				root, err := os.ReadFile(rootFile)
				if err != nil {
					return fmt.Errorf("--root: %w", err)
				}
				if fleet, err = enroll.NewOriginFleet(origin, root, iss.data, log); err != nil {
					return err
				}
			}
			srv, err := iss.server(cmd.Context(), fleet, log)
			if err != nil {
				return err
			}
			return serveIssuing(cmd.Context(), a, srv, listen, certFile, tlsKeyFile)
		},
	}
	iss.add(cmd, "")
	f := cmd.Flags()
	f.StringVar(&listen, "listen", listen, "address to listen on (loopback only without --cert)")
	f.StringVar(&repoDir, "repo", "", "repository directory to read fleet.json from")
	f.StringVar(&origin, "origin", "", "origin URL to fetch fleet.json from through TUF (with --root)")
	f.StringVar(&rootFile, "root", "", "the fleet's trusted root.json (with --origin)")
	f.StringVar(&certFile, "cert", "", "TLS certificate (PEM)")
	f.StringVar(&tlsKeyFile, "key", "", "TLS private key (PEM)")
	return cmd
}

// readIssuerKey reads the issuing key file (tufrepo's key file format).
func readIssuerKey(path, pass, passEnv string) (ed25519.PrivateKey, error) {
	k, err := tufrepo.ReadKeyFile(path, []byte(pass), true)
	if errors.Is(err, tufrepo.ErrPassphraseRequired) {
		return nil, fmt.Errorf("--issuer-key %s is encrypted: set %s: %w", path, passEnv, err)
	}
	if err != nil {
		return nil, fmt.Errorf("--issuer-key: %w", err)
	}
	if k.Role != tufrepo.RoleFleetIssuer {
		return nil, fmt.Errorf("--issuer-key %s: a %s key, want a %s key (never give the service the CA key)", path, k.Role, tufrepo.RoleFleetIssuer)
	}
	return k.Private, nil
}

// checkIssuer fails unless tr delegates key to an unexpired issuer.
func checkIssuer(tr *credential.Trust, key ed25519.PrivateKey) error {
	pub := key.Public().(ed25519.PublicKey)
	doc := tr.Document()
	for _, ic := range doc.Issuers {
		if !ic.Key.Equal(pub) {
			continue
		}
		for _, name := range doc.Revoked.Issuers {
			if name == ic.Name {
				return fmt.Errorf("issuing key %s: its issuer %q is revoked in the fleet document", credential.SignerIDOf(pub), ic.Name)
			}
		}
		if !time.Now().Before(ic.NotAfter) {
			return fmt.Errorf("issuing key %s: its issuer %q expired at %s (renew it with patchring ca issuer)", credential.SignerIDOf(pub), ic.Name, ic.NotAfter.Format(time.RFC3339))
		}
		return nil
	}
	return fmt.Errorf("issuing key %s is not delegated in the fleet document: publish its issuer certificate first (patchring ca issuer)", credential.SignerIDOf(pub))
}

// serveIssuing serves srv on addr until ctx is done.
func serveIssuing(ctx context.Context, a *app, srv http.Handler, addr, certFile, keyFile string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); certFile == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %s: without --cert/--key the service listens on loopback only (tokens and credentials would cross the network in clear)", addr)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	scheme, pin := "http", ""
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		sum := sha256.Sum256(cert.Certificate[0])
		scheme, pin = "https", hex.EncodeToString(sum[:])
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if hs.TLSConfig != nil {
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	fmt.Fprintf(a.Out, "Issuing service on %s://%s/\n", scheme, ln.Addr())
	if pin != "" {
		fmt.Fprintf(a.Out, "Certificate pin (enroll-token create --pin): %s\n", pin)
	}
	return serveUntil(ctx, hs, ln)
}

// rateLimit turns requests per minute into a rate.
func rateLimit(perMinute int) rate.Limit { return rate.Limit(float64(perMinute) / 60) }
