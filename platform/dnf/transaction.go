package dnf

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/patchring/patchring/platform/vercmp"
)

// TxAction is what a transaction does to a package.
type TxAction string

// Transaction actions, as dnf's transaction table groups them.
const (
	TxInstall   TxAction = "install"
	TxUpgrade   TxAction = "upgrade"
	TxDowngrade TxAction = "downgrade"
	TxReinstall TxAction = "reinstall"
	TxRemove    TxAction = "remove"
)

// TxPackage is one row of dnf's transaction table.
type TxPackage struct {
	Action TxAction
	Name   string
	Arch   string
	EVR    vercmp.RPMVersion // the version installed, or removed for TxRemove
	Repo   string            // "@System" for removals, "@commandline" for files
}

var txSections = map[string]TxAction{
	"Installing:":                   TxInstall,
	"Installing dependencies:":      TxInstall,
	"Installing weak dependencies:": TxInstall,
	"Upgrading:":                    TxUpgrade,
	"Downgrading:":                  TxDowngrade,
	"Reinstalling:":                 TxReinstall,
	"Removing:":                     TxRemove,
	"Removing dependent packages:":  TxRemove,
	"Removing unused dependencies:": TxRemove,
}

// ParseTransaction parses the transaction table dnf 4 prints before it
// asks for confirmation (`dnf --assumeno install ...`): the sections
// "Installing:", "Upgrading:", "Removing dependent packages:" etc., each
// row "name arch [epoch:]version-release repo size", a name too wide for
// its column wrapped onto the next line, and obsoleted packages as
// "replacing name.arch version" lines (returned as removals). nothing is
// true when dnf said "Nothing to do." Any other section ("Skipping
// packages with conflicts:", module and group sections) is an error: the
// transaction would do something the caller cannot account for.
func ParseTransaction(out []byte) (pkgs []TxPackage, nothing bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		section TxAction
		inTable bool
		summary bool
		pending string
		lineNo  int
	)
	for sc.Scan() {
		lineNo++
		raw := strings.TrimRight(sc.Text(), " \r")
		line := strings.TrimSpace(raw)
		switch {
		case line == "Nothing to do.":
			nothing = true
			continue
		case strings.HasPrefix(line, "Transaction Summary"):
			summary = true
			inTable = false
			continue
		case strings.HasPrefix(raw, " Package ") && strings.Contains(raw, " Arch"):
			inTable = true
			continue
		}
		if !inTable || line == "" || strings.Trim(line, "=") == "" {
			continue
		}
		if !strings.HasPrefix(raw, " ") {
			// A section heading.
			a, ok := txSections[line]
			if !ok {
				return nil, false, fmt.Errorf("parse dnf transaction: line %d: unsupported section %q", lineNo, line)
			}
			section = a
			continue
		}
		if section == "" {
			return nil, false, fmt.Errorf("parse dnf transaction: line %d: package row before any section", lineNo)
		}
		f := strings.Fields(line)
		if f[0] == "replacing" {
			if len(f) != 3 {
				return nil, false, fmt.Errorf("parse dnf transaction: line %d: malformed replacing line %q", lineNo, line)
			}
			name, arch, ok := splitNameArch(f[1])
			evr, perr := vercmp.ParseRPM(f[2])
			if !ok || perr != nil {
				return nil, false, fmt.Errorf("parse dnf transaction: line %d: malformed replacing line %q", lineNo, line)
			}
			pkgs = append(pkgs, TxPackage{Action: TxRemove, Name: name, Arch: arch, EVR: evr, Repo: "@System"})
			continue
		}
		if pending != "" {
			f = append([]string{pending}, f...)
			pending = ""
		}
		if len(f) == 1 {
			pending = f[0] // wrapped name
			continue
		}
		// name arch version repo size [unit]
		if len(f) < 5 || len(f) > 6 {
			return nil, false, fmt.Errorf("parse dnf transaction: line %d: malformed row %q", lineNo, line)
		}
		evr, perr := vercmp.ParseRPM(f[2])
		if perr != nil || !validName(f[0]) || !validName(f[1]) || !validName(f[3]) {
			return nil, false, fmt.Errorf("parse dnf transaction: line %d: malformed row %q", lineNo, line)
		}
		pkgs = append(pkgs, TxPackage{Action: section, Name: f[0], Arch: f[1], EVR: evr, Repo: f[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("parse dnf transaction: %w", err)
	}
	if pending != "" {
		return nil, false, fmt.Errorf("parse dnf transaction: row %q cut short", pending)
	}
	if !nothing && !summary {
		return nil, false, fmt.Errorf("parse dnf transaction: no transaction summary and not \"Nothing to do.\"")
	}
	return pkgs, nothing, nil
}
