package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/policy"
)

// policySubcommands lists the constructors of the `patchring policy`
// subcommands. Each lives in its own file (policy_<name>.go) and is added to
// this list.
var policySubcommands = []func(*app) *cobra.Command{
	newPolicyValidateCmd,
	newPolicyPublishCmd,
	newPolicyShowCmd,
	newPolicyExplainCmd,
}

// newPolicyCmd builds `patchring policy`, the admin's tools for ring policies.
func newPolicyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check, publish and inspect ring policies",
		Long: "Ring policies say which updates each node installs and when: rings, maintenance windows,\n" +
			"approvals, pins, pauses, rollbacks and reboot rules. See docs/policy.example.yaml.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	for _, c := range policySubcommands {
		cmd.AddCommand(c(a))
	}
	return cmd
}

// policyValidation is the -o json output of `patchring policy validate`.
type policyValidation struct {
	File     string           `json:"file"`
	Valid    bool             `json:"valid"`
	Summary  string           `json:"summary,omitempty"`
	Problems []policy.Problem `json:"problems,omitempty"`
}

func newPolicyValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE.yaml",
		Short: "Check a policy file and report every mistake with its line, column and field",
		Long: "validate reads a policy written in YAML and reports every problem at once, each as\n" +
			"FILE:LINE:COL: FIELD: what is wrong and what is allowed. It exits with status 1 when there\n" +
			"are problems. Nothing is published or changed.",
		Example: "  patchring policy validate policy.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
			p, err := policy.Parse(data, file)
			var ve *policy.ValidationError
			if errors.As(err, &ve) {
				if a.jsonOutput() {
					if err := a.printJSON(policyValidation{File: file, Problems: ve.Problems}); err != nil {
						return err
					}
				} else {
					fmt.Fprintln(a.Out, ve.Error())
				}
				return &exitError{code: 1, msg: fmt.Sprintf("%s: %s", file, countProblems(len(ve.Problems)))}
			}
			if err != nil {
				return fmt.Errorf("validate %s: %w", file, err)
			}
			if a.jsonOutput() {
				return a.printJSON(policyValidation{File: file, Valid: true, Summary: p.Summary()})
			}
			fmt.Fprintf(a.Out, "%s: valid (%s)\n", file, p.Summary())
			return nil
		},
	}
}

func countProblems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}
