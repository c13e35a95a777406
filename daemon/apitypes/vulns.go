package apitypes

import "time"

// VulnFinding is one vulnerability an installed package is exposed to.
type VulnFinding struct {
	Package       string `json:"package"`
	Version       string `json:"version"`
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	// ID is the CVE (or the advisory's ID when it names no CVE).
	ID         string   `json:"id"`
	Advisories []string `json:"advisories"`
	// Severity is critical, high, medium, low, none or unknown.
	Severity string  `json:"severity"`
	Score    float64 `json:"score,omitempty"`
	KEV      bool    `json:"kev,omitempty"`
	// FixedIn is the first fixed version the advisories name for this
	// release, empty when none is published.
	FixedIn string `json:"fixed_in,omitempty"`
	// Fix is none (no fix published), not-available (published, not
	// offered by the node's sources), available, approved or pending.
	Fix     string `json:"fix"`
	Update  string `json:"update,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// CPUVuln is a CPU vulnerability as the kernel reports it
// (/sys/devices/system/cpu/vulnerabilities).
type CPUVuln struct {
	Name string `json:"name"`
	// Status is not-affected, mitigated, vulnerable or unknown.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// VulnSummary counts a node's exposure: findings by severity, KEV ones,
// ones without an available fix, and vulnerable CPU issues. It is small
// enough to travel in gossip.
type VulnSummary struct {
	Critical int `json:"critical,omitempty"`
	High     int `json:"high,omitempty"`
	Medium   int `json:"medium,omitempty"`
	Low      int `json:"low,omitempty"`
	Unknown  int `json:"unknown,omitempty"`
	KEV      int `json:"kev,omitempty"`
	NoFix    int `json:"no_fix,omitempty"`
	CPU      int `json:"cpu,omitempty"`
	// Version is the advisory database version matched, 0 for none.
	Version int64 `json:"version,omitempty"`
}

// AdvisoryState is the advisory database an agent matches against.
type AdvisoryState struct {
	Version    int64     `json:"version,omitempty"`
	Built      string    `json:"built,omitempty"`
	KEVCatalog string    `json:"kev_catalog,omitempty"`
	Entries    int       `json:"entries,omitempty"`
	Checked    time.Time `json:"checked,omitzero"`
	// Stale is set when the last refresh was refused (expired or
	// tampered metadata): the findings come from the last verified
	// database.
	Stale bool   `json:"stale,omitempty"`
	Error string `json:"error,omitempty"`
}

// Vulns is the answer of GET /v1/vulns.
type Vulns struct {
	Advisories AdvisoryState `json:"advisories"`
	Ecosystems []string      `json:"ecosystems,omitempty"`
	Findings   []VulnFinding `json:"findings"`
	CPU        []CPUVuln     `json:"cpu,omitempty"`
	Summary    VulnSummary   `json:"summary"`
}
