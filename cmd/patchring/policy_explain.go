package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/policy"
)

// explanation is the -o json output of `patchring policy explain`.
type explanation struct {
	Ring    string             `json:"ring"`
	Why     string             `json:"why"`
	At      time.Time          `json:"at"`
	Windows []explainedWindow  `json:"next_windows,omitempty"`
	Gates   []policy.Gate      `json:"gates,omitempty"`
	Reboot  policy.RebootRules `json:"reboot"`
	// Transactions is what an install transaction may do besides
	// upgrading and adding packages (the whole fleet's rule).
	Transactions policy.Transactions `json:"transactions"`
	// RestartServices and RebootHooks are the fleet's rules for services
	// after an install and commands around a reboot.
	RestartServices policy.RestartServices `json:"restart_services"`
	RebootHooks     policy.RebootHooks     `json:"reboot_hooks,omitzero"`
	Decisions       []policy.Decision      `json:"decisions"`
	Rollbacks       []policy.Decision      `json:"rollbacks,omitempty"`
	Facts           policy.NodeFacts       `json:"facts"`
	Policy          string                 `json:"policy"`
}

type explainedWindow struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func newPolicyExplainCmd(a *app) *cobra.Command {
	var factsFile, updatesFile, at, nodeID string
	cmd := &cobra.Command{
		Use:   "explain FILE.yaml --node-facts FACTS.json|--node ID [--updates UPDATES.json] [--at TIME]",
		Short: "Dry run: which ring a node falls in and what it would do with each update, and when",
		Long: "explain evaluates a policy file for one node without publishing anything.\n" +
			"FACTS.json holds the node's facts, e.g. {\"node_id\": \"...\", \"hostname\": \"lab-3\", \"site\": \"hq\", \"tags\": [\"lab\"]}\n" +
			"(`patchring status -o json` shows a node's ID). UPDATES.json is a list of updates, e.g.\n" +
			"[{\"source\": \"apt\", \"package\": \"openssl\", \"version\": \"3.0.15-1\", \"classification\": \"security\", \"first_seen\": \"2026-11-20T00:00:00Z\"}].",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("explain: %w", err)
			}
			p, err := policy.Parse(data, args[0])
			if err != nil {
				fmt.Fprintln(a.Err, err)
				return &exitError{code: 1, msg: args[0] + ": fix the problems above first"}
			}
			var f policy.NodeFacts
			switch {
			case factsFile != "" && nodeID != "":
				return fmt.Errorf("explain: give --node-facts or --node, not both")
			case factsFile != "":
				if err := readJSONFile(factsFile, &f); err != nil {
					return err
				}
			case nodeID != "":
				// The node's facts as it gossips them, seen from the local
				// agent: a hint about the member, enough for a dry run.
				fl, err := a.client().Fleet(cmd.Context())
				if err != nil {
					return fmt.Errorf("explain --node: ask the local agent for its site: %w", err)
				}
				found := false
				for _, m := range fl.Members {
					if m.NodeID == nodeID || m.Hostname == nodeID {
						f = policy.NodeFacts{NodeID: m.NodeID, Hostname: m.Hostname, Site: m.Site, Tags: m.Tags}
						found = true
					}
				}
				if !found {
					return fmt.Errorf("explain --node %s: no such member in this agent's site (see patchring fleet)", nodeID)
				}
			default:
				return fmt.Errorf("explain: --node-facts FILE or --node ID|HOSTNAME is required")
			}
			var updates []policy.Update
			if updatesFile != "" {
				if err := readJSONFile(updatesFile, &updates); err != nil {
					return err
				}
			}
			now := time.Now()
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return fmt.Errorf("--at %q: use RFC 3339, e.g. 2026-12-01T09:00:00Z", at)
				}
			}
			ex := explanation{At: now, Facts: f, Policy: p.Name}
			ex.Ring, ex.Why = policy.RingFor(p, f)
			t := now
			for i := 0; i < 3; i++ {
				start, end, name, ok := p.NextWindow(ex.Ring, t)
				if !ok {
					break
				}
				ex.Windows = append(ex.Windows, explainedWindow{Name: name, Start: start, End: end})
				t = end.Add(time.Second)
			}
			ex.Reboot = p.RebootRules(f)
			ex.Transactions = p.Transactions
			ex.RestartServices = p.RestartServices
			ex.RestartServices.Mode = p.RestartMode()
			ex.RebootHooks = p.RebootHooks
			for _, r := range p.Rings {
				if r.Name == ex.Ring {
					ex.Gates = r.Gates
				}
			}
			ex.Decisions = policy.Evaluate(p, f, updates, policy.FleetStats{}, now)
			ex.Rollbacks = policy.Rollbacks(p, f, now)
			if a.jsonOutput() {
				return a.printJSON(ex)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Node:\t%s (%s)\n", orDash(f.Hostname), orDash(f.NodeID))
			fmt.Fprintf(tw, "Ring:\t%s: %s\n", ex.Ring, ex.Why)
			fmt.Fprintf(tw, "At:\t%s\n", now.Format(time.RFC3339))
			for i, w := range ex.Windows {
				label := ""
				if i == 0 {
					label = "Next windows:"
				}
				fmt.Fprintf(tw, "%s\t%s %s - %s\n", label, w.Name, w.Start.Format("Mon 2006-01-02 15:04 MST"), w.End.Format("15:04 MST"))
			}
			r := ex.Reboot
			fmt.Fprintf(tw, "Reboot:\tdeferrals %v (at most %d), refuse %v, deadline %s, grace %s\n", r.DeferChoices, r.MaxDeferrals, r.AllowRefuse, r.Deadline, r.Grace)
			fmt.Fprintf(tw, "Restart now:\t%s\n", userRestartText(r.UserRestart))
			var gates []apitypes.GatePolicy
			for _, g := range ex.Gates {
				gp := apitypes.GatePolicy{Ring: g.Ring, MinSuccess: g.MinSuccess, MinNodes: g.MinNodes, TooFewReports: g.TooFewReports}
				if g.OpenAfter != 0 {
					gp.OpenAfter = g.OpenAfter.String()
				}
				gates = append(gates, gp)
			}
			printGates(tw, gates)
			printTransactions(tw, ex.Transactions.AllowRemove, ex.Transactions.WithoutRollback)
			hp := apitypes.RebootHooksPolicy{}
			if h := ex.RebootHooks.PreReboot; h != nil {
				hp.PreReboot, hp.PreTimeout = h.Command, h.Timeout.String()
			}
			if h := ex.RebootHooks.PostReboot; h != nil {
				hp.PostReboot, hp.PostTimeout = h.Command, h.Timeout.String()
			}
			printRestarts(tw, apitypes.RestartPolicy(ex.RestartServices), hp)
			tw.Flush()
			if len(updates) > 0 {
				fmt.Fprintln(a.Out)
				tw = tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "UPDATE\tDECISION\tWHEN\tREASON")
				for _, d := range ex.Decisions {
					when := "-"
					if !d.At.IsZero() {
						when = d.At.Format("2006-01-02 15:04 MST")
					}
					fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\n", d.Update.Package, d.Update.Version, d.Action, when, d.Reason)
				}
				tw.Flush()
			}
			for _, d := range ex.Rollbacks {
				fmt.Fprintf(a.Out, "rollback: %s %s: %s\n", d.Update.Package, d.Update.Version, d.Reason)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&factsFile, "node-facts", "", "JSON file with the node's facts")
	cmd.Flags().StringVar(&nodeID, "node", "", "a member of the local agent's site, by node ID or hostname (facts from gossip)")
	cmd.Flags().StringVar(&updatesFile, "updates", "", "JSON file with the updates to decide on")
	cmd.Flags().StringVar(&at, "at", "", "evaluate at this time (RFC 3339) instead of now")
	return cmd
}

func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
