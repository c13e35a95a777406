package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// KEVCatalog is CISA's Known Exploited Vulnerabilities catalog in its JSON
// feed format (known_exploited_vulnerabilities.json).
type KEVCatalog struct {
	Title           string     `json:"title"`
	CatalogVersion  string     `json:"catalogVersion"`
	DateReleased    string     `json:"dateReleased"`
	Count           int        `json:"count"`
	Vulnerabilities []KEVEntry `json:"vulnerabilities"`
}

// KEVEntry is one exploited vulnerability.
type KEVEntry struct {
	CveID                      string   `json:"cveID"`
	VendorProject              string   `json:"vendorProject"`
	Product                    string   `json:"product"`
	VulnerabilityName          string   `json:"vulnerabilityName"`
	DateAdded                  string   `json:"dateAdded"`
	ShortDescription           string   `json:"shortDescription"`
	RequiredAction             string   `json:"requiredAction"`
	DueDate                    string   `json:"dueDate"`
	KnownRansomwareCampaignUse string   `json:"knownRansomwareCampaignUse"`
	Notes                      string   `json:"notes"`
	CWEs                       []string `json:"cwes,omitempty"`
}

var cveRE = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)

// ParseKEV parses the KEV catalog. Every entry must name a CVE; the count,
// when given, must match the list. file names it in errors.
func ParseKEV(data []byte, file string) (*KEVCatalog, error) {
	var c KEVCatalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, &ParseError{File: file, Err: fmt.Errorf("not a KEV catalog: %w", err)}
	}
	if c.Vulnerabilities == nil {
		return nil, &ParseError{File: file, Field: "vulnerabilities", Err: errors.New("missing")}
	}
	if c.Count != 0 && c.Count != len(c.Vulnerabilities) {
		return nil, &ParseError{File: file, Field: "count", Err: fmt.Errorf("says %d, the list has %d", c.Count, len(c.Vulnerabilities))}
	}
	for i, v := range c.Vulnerabilities {
		if !cveRE.MatchString(v.CveID) {
			return nil, &ParseError{File: file, Field: fmt.Sprintf("vulnerabilities[%d].cveID", i), Err: fmt.Errorf("%q is not a CVE ID", v.CveID)}
		}
	}
	return &c, nil
}

// Set returns the catalog's CVE IDs with the date each was added.
func (c *KEVCatalog) Set() map[string]string {
	m := make(map[string]string, len(c.Vulnerabilities))
	for _, v := range c.Vulnerabilities {
		m[v.CveID] = v.DateAdded
	}
	return m
}
