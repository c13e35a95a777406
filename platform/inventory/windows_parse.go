package inventory

// Parsers for Windows sources. Portable so that recorded output under
// testdata is tested on every OS; the registry reading itself lives in
// the _windows.go files.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// regKey is a registry key with its values as strings (DWORD and QWORD in
// decimal), as read from the registry or from `reg query KEY /s` output.
type regKey struct {
	Path   string
	Values map[string]string
}

// parseRegQuery reads the text output of `reg query KEY /s`: a key path
// at the start of a line, then indented "    Name    REG_TYPE    Data"
// lines. REG_DWORD data (0x...) is turned into decimal. Lines it does not
// understand are an error naming the line.
func parseRegQuery(data []byte) ([]regKey, error) {
	data = decodeUTF16(data)
	var out []regKey
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, "\r")
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case strings.HasPrefix(line, "HKEY_"):
			out = append(out, regKey{Path: line, Values: map[string]string{}})
		case strings.HasPrefix(line, "    "):
			if len(out) == 0 {
				return nil, fmt.Errorf("reg query line %d: value before any key", i+1)
			}
			body := line[4:]
			t := strings.Index(body, "    REG_")
			if t < 0 {
				return nil, fmt.Errorf("reg query line %d: no REG_ type in %q", i+1, line)
			}
			name := body[:t]
			rest := body[t+4:]
			typ, val, _ := strings.Cut(rest, "    ")
			if name == "(Default)" {
				name = ""
			}
			if typ == "REG_DWORD" || typ == "REG_QWORD" {
				n, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
				if err != nil {
					return nil, fmt.Errorf("reg query line %d: %s %q: %w", i+1, typ, val, err)
				}
				val = strconv.FormatUint(n, 10)
			}
			out[len(out)-1].Values[name] = val
		case strings.HasPrefix(line, "End of search"):
			continue
		default:
			return nil, fmt.Errorf("reg query line %d: %q is neither a key nor a value", i+1, line)
		}
	}
	return out, nil
}

// decodeUTF16 turns UTF-16LE text with a BOM (what PowerShell and reg.exe
// write when redirected on some systems) into UTF-8; other input is
// returned as is.
func decodeUTF16(data []byte) []byte {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xFE {
		return bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))
	}
	u := make([]uint16, 0, len(data)/2)
	for i := 2; i+1 < len(data); i += 2 {
		u = append(u, uint16(data[i])|uint16(data[i+1])<<8)
	}
	return []byte(string(utf16.Decode(u)))
}

// uninstallPackages turns the subkeys of an Uninstall key into packages
// the way "Apps & features" lists them: entries need a DisplayName; system
// components, updates belonging to another entry (ParentKeyName) and
// hotfix entries are skipped. arch is "x64" or "x86" for the registry view
// read, "" for the user's hive.
func uninstallPackages(keys []regKey, arch string) []Package {
	var out []Package
	for _, k := range keys {
		v := k.Values
		name := strings.TrimSpace(v["DisplayName"])
		if name == "" || v["SystemComponent"] == "1" || v["ParentKeyName"] != "" {
			continue
		}
		switch v["ReleaseType"] {
		case "Update", "Hotfix", "Security Update":
			continue
		}
		p := Package{
			Manager:      "windows-registry",
			Name:         name,
			Version:      strings.TrimSpace(v["DisplayVersion"]),
			Architecture: arch,
			Publisher:    strings.TrimSpace(v["Publisher"]),
			Status:       "installed",
		}
		if t, err := time.Parse("20060102", strings.TrimSpace(v["InstallDate"])); err == nil {
			p.InstalledAt = t.UTC()
		}
		out = append(out, p)
	}
	return out
}

// hotfixRecord is one object of
// `Get-HotFix | Select-Object HotFixID,Description,InstalledOn,InstalledBy | ConvertTo-Json`.
type hotfixRecord struct {
	HotFixID    string          `json:"HotFixID"`
	Description string          `json:"Description"`
	InstalledOn json.RawMessage `json:"InstalledOn"`
	InstalledBy string          `json:"InstalledBy"`
}

// parseHotfixJSON reads Get-HotFix output converted to JSON. PowerShell
// writes one object instead of an array for a single hotfix, and a date as
// {"value": "/Date(ms)/", "DateTime": "..."} (Windows PowerShell 5.1), as
// "/Date(ms)/" or as an ISO 8601 string (PowerShell 7).
func parseHotfixJSON(data []byte) ([]Package, error) {
	data = bytes.TrimSpace(decodeUTF16(data))
	if len(data) == 0 {
		return nil, nil
	}
	var recs []hotfixRecord
	if data[0] == '{' {
		var one hotfixRecord
		if err := json.Unmarshal(data, &one); err != nil {
			return nil, fmt.Errorf("parse Get-HotFix JSON: %w", err)
		}
		recs = []hotfixRecord{one}
	} else if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fmt.Errorf("parse Get-HotFix JSON: %w", err)
	}
	var out []Package
	for i, r := range recs {
		if r.HotFixID == "" {
			return nil, fmt.Errorf("parse Get-HotFix JSON: record %d has no HotFixID", i+1)
		}
		p := Package{Manager: "windows-hotfix", Name: r.HotFixID, Source: r.Description, Publisher: r.InstalledBy, Status: "installed"}
		p.InstalledAt = psDate(r.InstalledOn)
		out = append(out, p)
	}
	return out, nil
}

// psDate decodes the date forms PowerShell's ConvertTo-Json writes.
func psDate(raw json.RawMessage) time.Time {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}
	}
	var obj struct {
		Value string `json:"value"`
	}
	var s string
	if json.Unmarshal(raw, &obj) == nil && obj.Value != "" {
		s = obj.Value
	} else if json.Unmarshal(raw, &s) != nil {
		return time.Time{}
	}
	if ms, ok := strings.CutPrefix(s, "/Date("); ok {
		ms, _, _ = strings.Cut(ms, ")")
		// "/Date(1699574400000+0100)/" carries an offset we do not need:
		// the number is already UTC milliseconds.
		ms, _, _ = strings.Cut(ms, "+")
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			return time.UnixMilli(n).UTC()
		}
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "1/2/2006 3:04:05 PM", "1/2/2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
