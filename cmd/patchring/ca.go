package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/tufrepo"
)

// caLedgerName is the offline CA's ledger of issued credentials, in the
// keys directory (an issuing service keeps its own in its data directory).
const caLedgerName = "issued.jsonl"

// Default validity of what the CA signs. Offline sites should sign longer
// credentials (docs/IDENTITY.md): they renew only when an admin signs again.
const (
	defaultCredentialValidity = "90d"
	defaultIssuerValidity     = "180d"
)

func newCaCmd(a *app) *cobra.Command {
	f := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "The fleet's authority: node credentials, issuing keys, revocation (fleet.json)",
		Long: `Admin tools for the fleet CA. The CA key lives in KEYDIR beside the TUF keys (same
format and passphrase) and signs node credentials (offline: ca sign) and issuer
certificates for issuing services (ca issuer create). fleet.json, a TUF target of the
repository, publishes the CA keys, the issuers and what is revoked; agents admit only
members whose credential verifies against it. See docs/IDENTITY.md.`,
	}
	f.bind(cmd)
	cmd.AddCommand(newCaInitCmd(a, f), newCaSignCmd(a, f), newCaListCmd(a, f), newCaRevokeCmd(a, f),
		newCaShowCmd(a, f), newCaIssuerCmd(a, f), newCaRotateCmd(a, f), newCaRemoveKeyCmd(a, f),
		newCaServeCmd(a))
	return cmd
}

// openCA opens the repository and loads the CA key that signs, asking for
// the passphrase on the terminal when the key file is encrypted and the
// passphrase variable is unset. It returns the passphrase in use. Only the
// CA key is decrypted: signing credentials needs no TUF key.
func (f *repoFlags) openCA(a *app) (*tufrepo.Repo, ed25519.PrivateKey, string, error) {
	if err := f.needKeys(); err != nil {
		return nil, nil, "", err
	}
	pass := os.Getenv(f.passEnv)
	r, err := tufrepo.Open(f.dir, f.keys, pass)
	if err != nil {
		return nil, nil, "", err
	}
	ca, err := r.SigningCA()
	if errors.Is(err, tufrepo.ErrPassphraseRequired) {
		p, perr := readPassphrase(a, "Passphrase for the fleet CA key in "+f.keys+": ", false)
		if perr != nil {
			return nil, nil, "", fmt.Errorf("the fleet CA key in %s is encrypted: set %s or run from a terminal (%v)", f.keys, f.passEnv, perr)
		}
		if r, err = tufrepo.Open(f.dir, f.keys, p); err != nil {
			return nil, nil, "", err
		}
		pass = p
		ca, err = r.SigningCA()
	}
	if err != nil {
		return nil, nil, "", err
	}
	return r, ca, pass, nil
}

// fleetTrust reads the repository's fleet document (no keys needed).
func (f *repoFlags) fleetTrust() (*credential.Trust, error) {
	if err := f.needDir(); err != nil {
		return nil, err
	}
	return tufrepo.FleetTrust(f.dir)
}

func newCaInitCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "init --repo DIR --keys KEYDIR",
		Short: "Create the fleet CA key and publish fleet.json (for a repository made before fleet identity)",
		Long: `Create the fleet CA key in KEYDIR (encrypted with the passphrase of the other key files:
set the passphrase variable or answer the prompt) and publish fleet.json naming it, with
no issuers and nothing revoked. Refused when the repository publishes fleet.json already
(a new CA key is ca rotate). Once fleet.json reaches the agents, they admit only members
with credentials: on a live fleet, collect the nodes' requests first and sign them (ca
sign) or delegate an issuing service (ca issuer create, ca serve) before the repository
reaches the origin (docs/IDENTITY.md, "Upgrading a fleet").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			if ro, err := tufrepo.Open(f.dir, "", ""); err != nil {
				return err
			} else if _, err := ro.FleetDocument(); err == nil {
				return fmt.Errorf("ca init: %s already publishes %s; to add a CA key use patchring ca rotate", f.dir, credential.TargetName)
			} else if !errors.Is(err, tufrepo.ErrNoFleet) {
				return err
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			doc, err := r.InitFleet()
			if err != nil {
				return err
			}
			id := credential.SignerIDOf(doc.CA[0]).String()
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"ca_signer": id, "versions": r.Versions()})
			}
			fmt.Fprintf(a.Out, "Created fleet CA key %s in %s and published %s.\n", id, f.keys, credential.TargetName)
			if err := printVersions(a, "Published", r.Versions()); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Agents now require credentials: sign requests with patchring ca sign, or delegate an\nissuing service with patchring ca issuer create. Keep %s offline.\n", f.keys)
			return nil
		},
	}
}

// signed is one credential ca sign wrote.
type signed struct {
	NodeID   string    `json:"node_id"`
	Hostname string    `json:"hostname"`
	Site     string    `json:"site"`
	Tags     []string  `json:"tags"`
	Serial   uint64    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	Request  string    `json:"request"`
	File     string    `json:"file"`
}

// readRequest reads and checks one request file.
func readRequest(path string) (*credential.Request, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	raw, err := io.ReadAll(io.LimitReader(fh, credential.MaxRequestSize+1))
	if err != nil {
		return nil, err
	}
	return credential.ParseRequest(raw)
}

func newCaSignCmd(a *app, f *repoFlags) *cobra.Command {
	var site, valid, outDir string
	var tags []string
	cmd := &cobra.Command{
		Use:   "sign REQUEST... --site SITE [--tags T,...] [--valid 90d] [--out DIR]",
		Short: "Sign nodes' enrollment requests (patchringd enroll --request) into credentials",
		Long: `Check each request file (the node's signature over its ID and hostname proves it holds
the node key), sign a credential for it with the fleet CA key, record it in
KEYDIR/` + caLedgerName + `, and write NODE_ID.credential beside the request (or in --out)
for patchringd enroll --credential on the node. Every request is checked first: if any
is refused (unreadable, forged, a revoked node, two requests for one node), nothing
is signed and every refusal is listed. Offline sites renew only when an admin signs
again, so give them a longer --valid (docs/IDENTITY.md suggests 365d).`,
		Example: `  patchring ca sign /media/usb/requests/*.request --site berlin --tags pilot,linux --valid 365d`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			if site == "" {
				return errors.New("--site is required: the site the nodes belong to")
			}
			validity, err := policy.ParseDuration(valid)
			if err != nil || validity <= 0 {
				return fmt.Errorf("--valid %q: want a positive duration such as 90d", valid)
			}
			probe, _ := credential.NodeIDFromKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
			if err := (&credential.Credential{NodeID: probe, Site: site, Tags: tags, Serial: 1, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(0, 0).Add(validity)}).Validate(); err != nil {
				return fmt.Errorf("--site %q --tags %q: %w", site, strings.Join(tags, ","), err)
			}
			if outDir != "" {
				if fi, err := os.Stat(outDir); err != nil || !fi.IsDir() {
					return fmt.Errorf("--out %s: not a directory", outDir)
				}
			}
			// Check every request before touching a key.
			var problems []error
			reqs := make([]*credential.Request, len(args))
			seen := map[string]string{}
			for i, path := range args {
				req, err := readRequest(path)
				if err != nil {
					problems = append(problems, fmt.Errorf("%s: %w", path, err))
					continue
				}
				if other, ok := seen[req.NodeID]; ok {
					problems = append(problems, fmt.Errorf("%s: node %s also requested in %s", path, req.NodeID, other))
					continue
				}
				seen[req.NodeID] = path
				reqs[i] = req
			}
			tr, err := f.fleetTrust()
			if err != nil {
				return err
			}
			for i, req := range reqs {
				if req == nil {
					continue
				}
				if n, ok := tr.Revoked(req.NodeID); ok {
					problems = append(problems, fmt.Errorf("%s: node %s (%s) is revoked since %s (%s); a revoked node enrolls again with a new node key",
						args[i], req.NodeID, req.Hostname, n.At.UTC().Format(time.RFC3339), n.Reason))
					reqs[i] = nil
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("ca sign: nothing signed, %d of %d request(s) refused:\n  %w", len(problems), len(args), joinIndented(problems))
			}
			_, ca, _, err := f.openCA(a)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			creds := make([]*credential.Credential, len(args))
			for i, req := range reqs {
				serial, err := credential.NewSerial()
				if err != nil {
					return err
				}
				c := &credential.Credential{NodeID: req.NodeID, Hostname: req.Hostname, Site: site, Tags: tags,
					Serial: serial, NotBefore: now, NotAfter: now.Add(validity)}
				if err := c.Sign(ca); err != nil {
					problems = append(problems, fmt.Errorf("%s: %w", args[i], err))
					continue
				}
				if err := tr.VerifyFor(c, req.NodeID, now); err != nil {
					problems = append(problems, fmt.Errorf("%s: signed credential does not verify against %s: %w", args[i], credential.TargetName, err))
					continue
				}
				creds[i] = c
			}
			if len(problems) > 0 {
				return fmt.Errorf("ca sign: nothing signed, %d of %d request(s) refused:\n  %w", len(problems), len(args), joinIndented(problems))
			}
			ledger := filepath.Join(f.keys, caLedgerName)
			var out []signed
			for i, c := range creds {
				raw, err := c.Marshal()
				if err != nil {
					return fmt.Errorf("ca sign %s: %w", args[i], err)
				}
				dir := outDir
				if dir == "" {
					dir = filepath.Dir(args[i])
				}
				file := filepath.Join(dir, c.NodeID+".credential")
				// Recorded first: an issued credential is never unrecorded.
				if err := credential.AppendLedger(ledger, credential.IssuedFrom(c, now, "offline")); err != nil {
					return fmt.Errorf("ca sign %s: %w (%d credential(s) written before it)", args[i], err, len(out))
				}
				if err := atomicfile.WriteFile(file, raw, 0o644); err != nil {
					return fmt.Errorf("ca sign %s: serial %d is in the ledger but its file was not written: %w (%d credential(s) written before it)", args[i], c.Serial, err, len(out))
				}
				out = append(out, signed{NodeID: c.NodeID, Hostname: c.Hostname, Site: c.Site, Tags: c.Tags, Serial: c.Serial,
					NotAfter: c.NotAfter, Request: args[i], File: file})
			}
			if a.jsonOutput() {
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tNODE\tSERIAL\tVALID UNTIL\tFILE")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", orDash(s.Hostname), s.NodeID, s.Serial, s.NotAfter.Format(time.RFC3339), s.File)
			}
			tw.Flush()
			fmt.Fprintf(a.Out, "Signed %d credential(s) for site %s, tags [%s]; recorded in %s.\nInstall each on its node with: patchringd enroll --credential FILE\n",
				len(out), site, strings.Join(tags, ","), ledger)
			return nil
		},
	}
	cmd.Flags().StringVar(&site, "site", "", "site of the nodes (required)")
	cmd.Flags().StringSliceVar(&tags, "tags", nil, "tags of the nodes, comma separated (ring selectors match them)")
	cmd.Flags().StringVar(&valid, "valid", defaultCredentialValidity, "validity of the credentials (offline sites: longer, e.g. 365d)")
	cmd.Flags().StringVar(&outDir, "out", "", "directory for the credential files (default: beside each request)")
	return cmd
}

// joinIndented joins errors one per line, indented, for a list of
// refusals; errors.Is still sees each.
func joinIndented(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &listError{msg: strings.Join(msgs, "\n  "), errs: errs}
}

type listError struct {
	msg  string
	errs []error
}

func (e *listError) Error() string   { return e.msg }
func (e *listError) Unwrap() []error { return e.errs }

// ledgerRecord is one issued credential as ca list and ca show report it.
type ledgerRecord struct {
	credential.Issued
	Ledger string `json:"ledger"`
	// Status is valid, expired, not-yet-valid, revoked, foreign (signed by a
	// key fleet.json does not hold), untrusted (a retired or lapsed issuer)
	// or out-of-scope (an issuer signed outside its sites).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// SupersededBy is the serial of a newer credential for the same node.
	SupersededBy uint64 `json:"superseded_by,omitempty"`
}

// readLedgers reads the CA's ledger (KEYDIR/issued.jsonl, when --keys is
// set) and every --ledger file, which must exist.
func readLedgers(f *repoFlags, extra []string) ([]ledgerRecord, []string, error) {
	var paths []string
	if f.keys != "" {
		paths = append(paths, filepath.Join(f.keys, caLedgerName))
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, fmt.Errorf("--ledger %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, nil, errors.New("no ledger: give --keys KEYDIR (the CA's ledger) or --ledger FILE (an issuing service's)")
	}
	var out []ledgerRecord
	for _, p := range paths {
		recs, err := credential.ReadLedger(p)
		if err != nil {
			return nil, nil, err
		}
		for _, rec := range recs {
			out = append(out, ledgerRecord{Issued: rec, Ledger: p})
		}
	}
	return out, paths, nil
}

// classify turns a verification error into a status word and a reason.
func classify(tr *credential.Trust, signer credential.SignerID, err error) (string, string) {
	if err == nil {
		return "valid", ""
	}
	reason := err.Error()
	if i := strings.Index(reason, ": "); strings.HasPrefix(reason, "node ") && i > 0 {
		reason = reason[i+2:]
	}
	switch {
	case errors.Is(err, credential.ErrRevoked):
		return "revoked", reason
	case errors.Is(err, credential.ErrExpired):
		return "expired", reason
	case errors.Is(err, credential.ErrNotYetValid):
		return "not-yet-valid", reason
	case errors.Is(err, credential.ErrIssuerScope):
		return "out-of-scope", reason
	case errors.Is(err, credential.ErrUnknownSigner):
		if tr.SignerName(signer) == "" {
			return "foreign", reason + "; another fleet's key, or a CA key removed by a rotation"
		}
		return "untrusted", reason
	case errors.Is(err, credential.ErrBadSignature):
		return "forged", reason
	case errors.Is(err, credential.ErrWrongNode):
		return "wrong-node", reason
	}
	return "invalid", reason
}

// check fills in the status of every record against tr at now, and marks
// records a newer one for the same node supersedes.
func check(tr *credential.Trust, recs []ledgerRecord, now time.Time) {
	newest := map[string]int{}
	for i, r := range recs {
		if j, ok := newest[r.NodeID]; !ok || !r.IssuedAt.Before(recs[j].IssuedAt) { // a later line wins a tie
			newest[r.NodeID] = i
		}
	}
	for i := range recs {
		r := &recs[i]
		sid, _ := credential.ParseSignerID(r.Signer)
		r.Status, r.Reason = classify(tr, sid, tr.CheckIssued(r.Issued, now))
		if j := newest[r.NodeID]; j != i {
			r.SupersededBy = recs[j].Serial
		}
	}
}

func sortRecords(recs []ledgerRecord) {
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		if a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID
		}
		return a.IssuedAt.Before(b.IssuedAt)
	})
}

func printRecords(a *app, recs []ledgerRecord) error {
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tNODE\tSITE\tTAGS\tSERIAL\tVALID\tSTATUS")
	for _, r := range recs {
		status := r.Status
		if r.Reason != "" {
			status += ": " + r.Reason
		}
		if r.SupersededBy != 0 {
			status += fmt.Sprintf(" (superseded by serial %d)", r.SupersededBy)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s..%s\t%s\n", orDash(r.Hostname), r.NodeID, r.Site, orDash(strings.Join(r.Tags, ",")), r.Serial,
			r.NotBefore.UTC().Format("2006-01-02"), r.NotAfter.UTC().Format("2006-01-02"), status)
	}
	return tw.Flush()
}

func newCaListCmd(a *app, f *repoFlags) *cobra.Command {
	var site, signer string
	var ledgers []string
	cmd := &cobra.Command{
		Use:   "list [--site S] [--signer ID] [--ledger FILE]...",
		Short: "List issued credentials and whether each is valid, expired or revoked (and why)",
		Long: `List the credentials recorded in the CA's ledger (KEYDIR/` + caLedgerName + `, with --keys) and in
issuing services' ledgers (--ledger FILE, repeatable), each checked against the
repository's fleet.json as agents check it: valid, expired, not-yet-valid, revoked,
foreign (a key fleet.json does not hold), untrusted (a retired or lapsed issuer) or
out-of-scope (outside its issuer's sites), with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tr, err := f.fleetTrust()
			if err != nil {
				return err
			}
			recs, _, err := readLedgers(f, ledgers)
			if err != nil {
				return err
			}
			check(tr, recs, time.Now())
			recs = slices.DeleteFunc(recs, func(r ledgerRecord) bool {
				return (site != "" && r.Site != site) || (signer != "" && r.Signer != signer)
			})
			sortRecords(recs)
			if a.jsonOutput() {
				return a.printJSON(append([]ledgerRecord{}, recs...))
			}
			if len(recs) == 0 {
				fmt.Fprintln(a.Out, "No credentials issued.")
				return nil
			}
			return printRecords(a, recs)
		},
	}
	cmd.Flags().StringVar(&site, "site", "", "only credentials for this site")
	cmd.Flags().StringVar(&signer, "signer", "", "only credentials signed by this key (16 hex digits; e.g. the old CA key during a rotation)")
	cmd.Flags().StringArrayVar(&ledgers, "ledger", nil, "an issuing service's ledger (DATA/"+caLedgerName+"); repeatable")
	return cmd
}

// lookupNode finds the records of a node ID or hostname (case-insensitive).
func lookupNode(recs []ledgerRecord, who string) (nodeID string, matches []ledgerRecord) {
	if _, err := credential.NodeKey(who); err == nil {
		nodeID = who
	}
	for _, r := range recs {
		if (nodeID != "" && r.NodeID == nodeID) || (nodeID == "" && strings.EqualFold(r.Hostname, who)) {
			matches = append(matches, r)
		}
	}
	return nodeID, matches
}

func newCaRevokeCmd(a *app, f *repoFlags) *cobra.Command {
	var reason string
	var serial uint64
	var ledgers []string
	cmd := &cobra.Command{
		Use:   "revoke NODE_ID|HOSTNAME --reason R | --serial N",
		Short: "Revoke a node (all its credentials) or one credential, and publish fleet.json",
		Long: `Revoke a node by its ID, or by its hostname as the ledgers (KEYDIR/` + caLedgerName + ` and
--ledger files) record it; a hostname that names several nodes is refused with the
candidates listed. A revoked node's credentials, current and renewed, stop verifying
and agents drop it from their pool, exchange and counts within one policy refresh of
the published fleet.json (offline sites: once the bundle with it is imported). There is
no unrevoke: a node that should come back enrolls again with a new node key.
--serial N revokes one credential instead (fleet.json records no reason for it).
Publishing needs the targets, snapshot and timestamp keys, not the CA key.`,
		Example: `  patchring ca revoke web-7 --reason "laptop stolen 2026-12-03"`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			if (len(args) == 1) == (serial != 0) {
				return errors.New("give a NODE_ID or HOSTNAME, or --serial N (one of them)")
			}
			tr, err := f.fleetTrust()
			if err != nil {
				return err
			}
			recs, paths, err := readLedgers(f, ledgers)
			if err != nil {
				return err
			}
			if serial != 0 {
				return revokeSerial(a, f, tr, recs, serial)
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: it is published with the revocation")
			}
			nodeID, matches := lookupNode(recs, args[0])
			if nodeID == "" {
				nodes := map[string][]ledgerRecord{}
				var revoked []string
				for _, m := range matches {
					if _, ok := tr.Revoked(m.NodeID); ok {
						if !slices.Contains(revoked, m.NodeID) {
							revoked = append(revoked, m.NodeID)
						}
						continue
					}
					nodes[m.NodeID] = append(nodes[m.NodeID], m)
				}
				switch {
				case len(nodes) == 0 && len(revoked) > 0:
					return fmt.Errorf("hostname %q: every node with it is revoked already (%s)", args[0], strings.Join(revoked, ", "))
				case len(nodes) == 0:
					return fmt.Errorf("hostname %q is in no ledger (%s) and is not a node ID; give the node ID", args[0], strings.Join(paths, ", "))
				case len(nodes) > 1:
					var lines []string
					for id, rs := range nodes {
						last := rs[len(rs)-1]
						lines = append(lines, fmt.Sprintf("  %s  site %s, serial %d issued %s (%s)", id, last.Site, last.Serial, last.IssuedAt.Format(time.RFC3339), last.Ledger))
					}
					sort.Strings(lines)
					return fmt.Errorf("hostname %q names %d nodes; revoke one by its node ID:\n%s", args[0], len(nodes), strings.Join(lines, "\n"))
				}
				for id, rs := range nodes {
					nodeID, matches = id, rs
				}
			}
			if n, ok := tr.Revoked(nodeID); ok {
				return fmt.Errorf("node %s is revoked already since %s (%s)", nodeID, n.At.UTC().Format(time.RFC3339), n.Reason)
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			at := r.Now().UTC().Truncate(time.Second)
			v, err := r.UpdateFleet(func(d *credential.Document) error {
				if slices.ContainsFunc(d.Revoked.Nodes, func(n credential.RevokedNode) bool { return n.NodeID == nodeID }) {
					return fmt.Errorf("node %s is revoked already", nodeID)
				}
				d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: nodeID, Reason: reason, At: at})
				return nil
			})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"revoked_node": nodeID, "reason": reason, "at": at, "credentials": len(matches), "versions": v})
			}
			host := ""
			if len(matches) > 0 {
				host = fmt.Sprintf(" (%s, site %s)", matches[len(matches)-1].Hostname, matches[len(matches)-1].Site)
			}
			fmt.Fprintf(a.Out, "Revoked node %s%s: %s.\n", nodeID, host, reason)
			if len(matches) == 0 {
				fmt.Fprintf(a.Out, "Note: no ledger given records this node (%s); it is revoked all the same.\n", strings.Join(paths, ", "))
			}
			if err := printVersions(a, "Published", v); err != nil {
				return err
			}
			fmt.Fprintln(a.Out, "Agents drop it within one policy refresh once they fetch this repository (offline sites: with the next bundle).")
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, published in fleet.json (required for a node)")
	cmd.Flags().Uint64Var(&serial, "serial", 0, "revoke only the credential with this serial")
	cmd.Flags().StringArrayVar(&ledgers, "ledger", nil, "an issuing service's ledger, to resolve hostnames; repeatable")
	return cmd
}

func revokeSerial(a *app, f *repoFlags, tr *credential.Trust, recs []ledgerRecord, serial uint64) error {
	if slices.Contains(tr.Document().Revoked.Serials, serial) {
		return fmt.Errorf("serial %d is revoked already", serial)
	}
	r, err := f.open(a, true)
	if err != nil {
		return err
	}
	v, err := r.UpdateFleet(func(d *credential.Document) error {
		if slices.Contains(d.Revoked.Serials, serial) {
			return fmt.Errorf("serial %d is revoked already", serial)
		}
		d.Revoked.Serials = append(d.Revoked.Serials, serial)
		return nil
	})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(recs, func(r ledgerRecord) bool { return r.Serial == serial })
	if a.jsonOutput() {
		out := map[string]any{"revoked_serial": serial, "versions": v}
		if i >= 0 {
			out["node_id"] = recs[i].NodeID
		}
		return a.printJSON(out)
	}
	if i >= 0 {
		fmt.Fprintf(a.Out, "Revoked credential %d of node %s (%s).\n", serial, recs[i].NodeID, orDash(recs[i].Hostname))
	} else {
		fmt.Fprintf(a.Out, "Revoked credential %d (in none of the ledgers given).\n", serial)
	}
	return printVersions(a, "Published", v)
}

// shownCredential is ca show's report on a credential file.
type shownCredential struct {
	File      string    `json:"file"`
	NodeID    string    `json:"node_id"`
	Hostname  string    `json:"hostname"`
	Site      string    `json:"site"`
	Tags      []string  `json:"tags"`
	Serial    uint64    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Signer    string    `json:"signer"`
	SignedBy  string    `json:"signed_by,omitempty"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
}

func showFile(a *app, tr *credential.Trust, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(fh, credential.MaxSize+1))
	fh.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	c, err := credential.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a node credential: %w", path, err)
	}
	s := shownCredential{File: path, NodeID: c.NodeID, Hostname: c.Hostname, Site: c.Site, Tags: c.Tags, Serial: c.Serial,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Signer: c.Signer.String(), SignedBy: tr.SignerName(c.Signer)}
	s.Status, s.Reason = classify(tr, c.Signer, tr.Verify(c, time.Now()))
	if a.jsonOutput() {
		if err := a.printJSON(s); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "File:\t%s\n", s.File)
		fmt.Fprintf(tw, "Node:\t%s\n", s.NodeID)
		fmt.Fprintf(tw, "Hostname:\t%s\n", orDash(s.Hostname))
		fmt.Fprintf(tw, "Site:\t%s\n", s.Site)
		fmt.Fprintf(tw, "Tags:\t%s\n", orDash(strings.Join(s.Tags, ",")))
		fmt.Fprintf(tw, "Serial:\t%d\n", s.Serial)
		fmt.Fprintf(tw, "Valid:\t%s .. %s\n", s.NotBefore.Format(time.RFC3339), s.NotAfter.Format(time.RFC3339))
		fmt.Fprintf(tw, "Signer:\t%s %s\n", s.Signer, orDash(s.SignedBy))
		status := s.Status
		if s.Reason != "" {
			status += ": " + s.Reason
		}
		fmt.Fprintf(tw, "Status:\t%s\n", status)
		tw.Flush()
	}
	if s.Status != "valid" {
		return &exitError{code: 1}
	}
	return nil
}

func newCaShowCmd(a *app, f *repoFlags) *cobra.Command {
	var ledgers []string
	cmd := &cobra.Command{
		Use:   "show FILE|NODE_ID|HOSTNAME",
		Short: "Decode a credential file, or look a node up in the ledgers, and verify it against fleet.json",
		Long: `Decode a credential file (NODE_ID.credential, or an agent's STATE/node.credential) and
verify it against the repository's fleet.json as agents do; or, given a node ID or
hostname, show its credentials from the ledgers (KEYDIR/` + caLedgerName + `, --ledger files).
Each is valid, expired, not-yet-valid, revoked, foreign, untrusted, out-of-scope or
forged, with the reason. The exit status is 0 only when the file, or the node's
newest credential, is valid.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tr, err := f.fleetTrust()
			if err != nil {
				return err
			}
			if fi, err := os.Stat(args[0]); err == nil && fi.Mode().IsRegular() {
				return showFile(a, tr, args[0])
			}
			recs, paths, err := readLedgers(f, ledgers)
			if err != nil {
				return fmt.Errorf("%s is no file, so it is looked up as a node: %w", args[0], err)
			}
			check(tr, recs, time.Now())
			_, matches := lookupNode(recs, args[0])
			if len(matches) == 0 {
				return fmt.Errorf("%s: no such file, and no credential for that node ID or hostname in %s", args[0], strings.Join(paths, ", "))
			}
			sortRecords(matches)
			if a.jsonOutput() {
				if err := a.printJSON(matches); err != nil {
					return err
				}
			} else if err := printRecords(a, matches); err != nil {
				return err
			}
			for _, m := range matches {
				if m.SupersededBy == 0 && m.Status == "valid" {
					return nil
				}
			}
			return &exitError{code: 1}
		},
	}
	cmd.Flags().StringArrayVar(&ledgers, "ledger", nil, "an issuing service's ledger; repeatable")
	return cmd
}

func newCaIssuerCmd(a *app, f *repoFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "Delegate signing to issuing services (ca serve): create, list and retire issuing keys",
	}
	cmd.AddCommand(newCaIssuerCreateCmd(a, f), newCaIssuerListCmd(a, f), newCaIssuerRetireCmd(a, f))
	return cmd
}

func newCaIssuerCreateCmd(a *app, f *repoFlags) *cobra.Command {
	var name, valid, out, passEnv string
	var sites []string
	cmd := &cobra.Command{
		Use:   "create --name N [--sites S,...] [--valid 180d] --out DIR",
		Short: "Make an issuing key for an issuing service and publish its CA-signed certificate",
		Long: `Create a fresh issuing key (role fleet-issuer) in DIR for the issuing service (patchring
ca serve), and publish in fleet.json a certificate for it signed by the fleet CA: it may
sign credentials for the listed sites (every site without --sites) until --valid runs
out. The key file is encrypted with the repository's passphrase, or with the one in
--issuer-passphrase-env (give the service its own). DIR must not be inside the
repository. Create a new issuer and retire the old before this one's validity ends.`,
		Example: `  patchring ca issuer create --name berlin-1 --sites berlin --valid 180d --out /srv/patchring-ca/keys`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			if name == "" || out == "" {
				return errors.New("--name and --out are required")
			}
			validity, err := policy.ParseDuration(valid)
			if err != nil || validity <= 0 {
				return fmt.Errorf("--valid %q: want a positive duration such as 180d", valid)
			}
			r, _, pass, err := f.openCA(a)
			if err != nil {
				return err
			}
			if passEnv != "" {
				if pass = os.Getenv(passEnv); pass == "" {
					return fmt.Errorf("--issuer-passphrase-env %s: the variable is empty", passEnv)
				}
			}
			ic, k, v, err := r.CreateIssuer(tufrepo.IssuerSpec{Name: name, Sites: sites, Valid: validity, OutDir: out, Passphrase: pass})
			if err != nil {
				return err
			}
			signer := credential.SignerIDOf(ic.Key).String()
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"issuer": ic.Name, "signer": signer, "sites": ic.Sites, "not_after": ic.NotAfter, "key_file": k.Path, "versions": v})
			}
			scope := "every site"
			if len(ic.Sites) > 0 {
				scope = "sites " + strings.Join(ic.Sites, ", ")
			}
			fmt.Fprintf(a.Out, "Created issuer %q (signer %s) for %s, valid until %s.\nIts key: %s (give it to the issuing service only).\n",
				ic.Name, signer, scope, ic.NotAfter.Format(time.RFC3339), k.Path)
			return printVersions(a, "Published", v)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "issuer name in fleet.json (required; retiring is by name)")
	cmd.Flags().StringSliceVar(&sites, "sites", nil, "sites it may issue for (default: all)")
	cmd.Flags().StringVar(&valid, "valid", defaultIssuerValidity, "how long the delegation lasts")
	cmd.Flags().StringVar(&out, "out", "", "directory for the issuing key file (required; private, outside the repository)")
	cmd.Flags().StringVar(&passEnv, "issuer-passphrase-env", "", "environment variable with a passphrase for the issuing key file (default: the repository's)")
	return cmd
}

// issuerRow is one issuer as ca issuer list reports it.
type issuerRow struct {
	Name      string    `json:"name"`
	Signer    string    `json:"signer"`
	SignedBy  string    `json:"signed_by"`
	Sites     []string  `json:"sites"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Status    string    `json:"status"` // live, retired, expired, not-yet-valid
}

func newCaIssuerListCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the CA keys and issuers fleet.json publishes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tr, err := f.fleetTrust()
			if err != nil {
				return err
			}
			doc := tr.Document()
			now := time.Now()
			var cas []string
			for _, k := range doc.CA {
				cas = append(cas, credential.SignerIDOf(k).String())
			}
			rows := []issuerRow{}
			for _, ic := range doc.Issuers {
				st := "live"
				switch {
				case slices.Contains(doc.Revoked.Issuers, ic.Name):
					st = "retired"
				case !now.Before(ic.NotAfter):
					st = "expired"
				case now.Before(ic.NotBefore):
					st = "not-yet-valid"
				}
				rows = append(rows, issuerRow{Name: ic.Name, Signer: credential.SignerIDOf(ic.Key).String(), SignedBy: ic.Signer,
					Sites: ic.Sites, NotBefore: ic.NotBefore, NotAfter: ic.NotAfter, Status: st})
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"ca": cas, "issuers": rows})
			}
			fmt.Fprintf(a.Out, "CA keys: %s\n", strings.Join(cas, ", "))
			if len(rows) == 0 {
				fmt.Fprintln(a.Out, "No issuers.")
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ISSUER\tSIGNER\tSITES\tVALID\tSTATUS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s..%s\t%s\n", r.Name, r.Signer, orDash(strings.Join(r.Sites, ",")),
					r.NotBefore.Format("2006-01-02"), r.NotAfter.Format("2006-01-02"), r.Status)
			}
			return tw.Flush()
		},
	}
}

func newCaIssuerRetireCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retire NAME",
		Short: "Retire an issuer: what it signed stops verifying (publishes fleet.json)",
		Long: `Add NAME to fleet.json's retired issuers. Credentials it signed stop verifying at each
agent's next policy refresh: their nodes must renew from another issuer or be signed
again (ca sign). Stop its issuing service and destroy its key file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			v, err := r.RetireIssuer(args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"retired_issuer": args[0], "versions": v})
			}
			fmt.Fprintf(a.Out, "Retired issuer %q.\n", args[0])
			return printVersions(a, "Published", v)
		},
	}
}

func newCaRotateCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Add a new CA key beside the current one (issuers re-signed); it signs from now on",
		Long: `Create a new fleet CA key in KEYDIR and publish it in fleet.json beside the current
ones, with every live issuer certificate re-signed by it. Credentials signed by the
old key keep verifying. Re-sign the offline nodes (ca sign) and let online nodes renew,
then remove the old key with patchring ca remove-key OLD_SIGNER (docs/IDENTITY.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			id, v, err := r.RotateFleetCA()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"ca_signer": id.String(), "versions": v})
			}
			fmt.Fprintf(a.Out, "Added fleet CA key %s; it signs from now on.\n", id)
			return printVersions(a, "Published", v)
		},
	}
}

func newCaRemoveKeyCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-key SIGNER",
		Short: "Remove an old CA key from fleet.json after a rotation; what it signed stops verifying",
		Long: `Remove the CA key SIGNER (16 hex digits, as ca issuer list and ca show print it) from
fleet.json; its key file moves to KEYDIR/retired/. Credentials it signed stop verifying
at agents' next refresh, so re-issue first (ca list shows each credential's signer).
The last CA key and a key that still signs a live issuer are refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			v, err := r.RemoveFleetCA(args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"removed_ca_signer": args[0], "versions": v})
			}
			fmt.Fprintf(a.Out, "Removed fleet CA key %s.\n", args[0])
			return printVersions(a, "Published", v)
		},
	}
}
