// Package detach runs a command detached from the calling process, so that
// it outlives it: the agent installing its own package, whose maintainer
// scripts stop and restart the agent's service. Under systemd the command
// runs as a transient service unit (systemd-run), outside the agent's
// cgroup; elsewhere it runs in a session of its own. Either way its output
// and exit status are written to files in a directory, so the agent that
// starts next can tell how it ended.
package detach
