package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/enroll"
)

func newEnrollTokenCmd(a *app) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "enroll-token",
		Short: "Create, list and delete enrollment tokens of the issuing service",
		Long: `Enrollment tokens let a new node enroll online with patchringd enroll TOKEN: each
holds the fleet's root.json, the origin and issuing service URLs and a one-time secret,
and grants a site and tags for a number of uses until it expires. The issuing service
(patchring ca serve --data DIR) keeps only the secret's hash. See docs/ENROLL.md.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "the issuing service's data directory")
	cmd.AddCommand(newEnrollTokenCreateCmd(a, &data), newEnrollTokenListCmd(a, &data), newEnrollTokenDeleteCmd(a, &data))
	return cmd
}

func needData(data string) error {
	if data == "" {
		return errors.New("--data DIR (the issuing service's data directory) is required")
	}
	return nil
}

func newEnrollTokenCreateCmd(a *app, data *string) *cobra.Command {
	var (
		site, origin, service, rootFile, pin, certFile, out, expires string
		tags                                                         []string
		uses                                                         = 1
	)
	expires = "7d"
	cmd := &cobra.Command{
		Use:   "create --data DIR --site S [--tags T,...] [--uses N] [--expires 7d] --origin URL --service URL --root root.json [--out FILE]",
		Short: "Create a token and print it (keep it secret: it enrolls nodes)",
		Example: `  patchring enroll-token create --data /var/lib/patchring-ca --site berlin --tags lab,kiosk --uses 20 --expires 7d \
      --origin https://updates.example.org/fleet --service https://ca.example.org:8446 --root root.json --out berlin.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needData(*data); err != nil {
				return err
			}
			if site == "" || origin == "" || service == "" || rootFile == "" {
				return errors.New("--site, --origin, --service and --root are required")
			}
			if err := checkGrant(site, tags); err != nil {
				return err
			}
			if uses < 1 {
				return fmt.Errorf("--uses %d: at least 1", uses)
			}
			ttl, err := policy.ParseDuration(expires)
			if err != nil || ttl <= 0 {
				return fmt.Errorf("--expires %q: a positive duration such as 7d", expires)
			}
			if certFile != "" {
				if pin != "" {
					return errors.New("give --pin or --service-cert, not both")
				}
				if pin, err = certPin(certFile); err != nil {
					return err
				}
			}
			if u, err := url.Parse(service); err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
				fmt.Fprintf(a.Err, "Warning: --service %s is plain HTTP: the token's secret and the credentials cross the network in clear unless a TLS proxy is in between; prefer https://\n", service)
			}
			root, err := os.ReadFile(rootFile)
			if err != nil {
				return fmt.Errorf("--root: %w", err)
			}
			id, secret, err := enroll.NewTokenSecret()
			if err != nil {
				return err
			}
			tok := &enroll.Token{ID: id, Secret: secret, Origin: origin, Service: service, Pin: strings.ToLower(pin), Root: root}
			s, err := tok.String()
			if err != nil {
				return err
			}
			store, err := enroll.OpenStore(*data)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			rec := enroll.TokenRecord{ID: id, SecretHash: enroll.HashSecret(secret), Fleet: tok.FleetID(), Site: site, Tags: tags,
				Uses: uses, UsesLeft: uses, Created: now, Expires: now.Add(ttl)}
			if out != "" {
				// The file first: a token in the store that nobody holds
				// is harmless, the other way round it is lost.
				if err := atomicfile.WriteFile(out, []byte(s+"\n"), 0o600); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if err := store.Add(rec); err != nil {
				if out != "" {
					os.Remove(out)
				}
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"token": s, "id": id, "site": site, "tags": tags, "uses": uses, "expires": rec.Expires})
			}
			if out != "" {
				fmt.Fprintf(a.Err, "Token %s (site %s, tags %s, %d uses, expires %s) written to %s\n", id, site, strings.Join(tags, ","), uses, rec.Expires.Format(time.RFC3339), out)
				return nil
			}
			fmt.Fprintln(a.Out, s)
			fmt.Fprintf(a.Err, "Token %s: site %s, tags %s, %d uses, expires %s\n", id, site, strings.Join(tags, ","), uses, rec.Expires.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "site the enrolled nodes get")
	f.StringSliceVar(&tags, "tags", nil, "tags the enrolled nodes get, comma separated")
	f.IntVar(&uses, "uses", uses, "how many nodes may enroll with the token")
	f.StringVar(&expires, "expires", expires, "how long the token is valid")
	f.StringVar(&origin, "origin", "", "base URL of the fleet's signed repository")
	f.StringVar(&service, "service", "", "base URL of the issuing service")
	f.StringVar(&rootFile, "root", "", "the fleet's trusted root.json")
	f.StringVar(&pin, "pin", "", "SHA-256 (hex) of the issuing service's TLS certificate, as ca serve prints it")
	f.StringVar(&certFile, "service-cert", "", "the issuing service's TLS certificate (PEM), to pin it")
	f.StringVar(&out, "out", "", "write the token to this file (mode 0600) instead of printing it")
	return cmd
}

// checkGrant checks a site and tags the way a credential will.
func checkGrant(site string, tags []string) error {
	id, err := credential.NodeIDFromKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
	if err != nil {
		return err
	}
	c := credential.Credential{NodeID: id, Hostname: strings.Repeat("h", credential.MaxHostname), Site: site, Tags: tags,
		Serial: 1, NotBefore: time.Unix(1, 0), NotAfter: time.Unix(2, 0)}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("--site/--tags: %w", err)
	}
	return nil
}

// certPin is the hex SHA-256 of a PEM certificate's DER.
func certPin(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--service-cert: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", fmt.Errorf("--service-cert %s: no PEM certificate", path)
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return "", fmt.Errorf("--service-cert %s: %w", path, err)
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

func newEnrollTokenListCmd(a *app, data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list --data DIR",
		Short: "List the tokens: site, tags, uses left, expiry, enrolled nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needData(*data); err != nil {
				return err
			}
			store, err := enroll.OpenStore(*data)
			if err != nil {
				return err
			}
			recs, err := store.Tokens()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				for i := range recs {
					recs[i].SecretHash = nil
				}
				return a.printJSON(recs)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSITE\tTAGS\tUSES LEFT\tEXPIRES\tSTATE")
			now := time.Now()
			for _, r := range recs {
				state := "active"
				switch {
				case !now.Before(r.Expires):
					state = "expired"
				case r.UsesLeft <= 0:
					state = "used up"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Site, strings.Join(r.Tags, ","), r.UsesLeft, r.Uses, r.Expires.Format(time.RFC3339), state)
			}
			return tw.Flush()
		},
	}
}

func newEnrollTokenDeleteCmd(a *app, data *string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete --data DIR ID...",
		Short: "Delete tokens so they enroll no more nodes (credentials already issued stay valid)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needData(*data); err != nil {
				return err
			}
			store, err := enroll.OpenStore(*data)
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := store.Delete(id); err != nil {
					return err
				}
				fmt.Fprintf(a.Out, "Token %s deleted\n", id)
			}
			return nil
		},
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
