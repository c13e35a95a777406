package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/policy"
)

func newPolicyPublishCmd(a *app) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "publish FILE.yaml --repo DIR --keys KEYDIR",
		Short: "Validate a policy, store it as the signed target policy.json, and sign targets, snapshot and timestamp",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			p, err := policy.Parse(data, args[0])
			if err != nil {
				fmt.Fprintln(a.Err, err)
				return &exitError{code: 1, msg: fmt.Sprintf("%s: not published: fix the problems above", args[0])}
			}
			canon, err := policy.MarshalCanonical(p)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			repo, err := rf.open(a, true)
			if err != nil {
				return err
			}
			version, err := repo.PublishPolicy(canon)
			if err != nil {
				return fmt.Errorf("publish %s: %w", args[0], err)
			}
			v := repo.Versions()
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"file": args[0], "policy": p.Name, "targets_version": version, "versions": v})
			}
			fmt.Fprintf(a.Out, "published %s (%q, %d rings) as policy.json in targets v%d; snapshot v%d, timestamp v%d\n",
				args[0], p.Name, len(p.Rings), version, v.Snapshot, v.Timestamp)
			return nil
		},
	}
	rf.bind(cmd)
	return cmd
}
