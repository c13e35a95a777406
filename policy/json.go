package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MarshalCanonical returns the signed form of p: compact JSON with fields in
// schema order, defaults written out, times in UTC and durations and rates in
// their canonical spelling. The same policy always gives the same bytes, and
// ParseJSON(MarshalCanonical(p)) gives back an equal policy. p must validate.
func MarshalCanonical(p *Policy) ([]byte, error) {
	if p == nil {
		return nil, errors.New("marshal policy: nil policy")
	}
	if !p.valid {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("marshal policy: %w", err)
		}
	}
	return marshalJSON(p)
}

func marshalJSON(p *Policy) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseJSON reads the signed (canonical JSON) form of a policy and validates
// it exactly as Parse does; agents call it on every policy they load. Unknown
// fields are errors. name is used in error messages.
func ParseJSON(data []byte, name string) (*Policy, error) {
	ps := &problems{}
	if len(data) > MaxPolicySize {
		ps.add(0, 0, "", "policy is %d bytes; a policy may have at most %d", len(data), MaxPolicySize)
		return nil, ps.err(name)
	}
	p := newPolicy()
	if err := decodeStrictJSON(data, p); err != nil {
		jsonProblem(data, err, ps)
		return nil, ps.err(name)
	}
	validate(p, ps)
	if err := ps.err(name); err != nil {
		return nil, err
	}
	p.valid = true
	return p, nil
}

// decodeStrictJSON decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func decodeStrictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return nil
}

// jsonProblem turns a JSON decoding error into a problem with a position.
func jsonProblem(data []byte, err error, ps *problems) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := offsetPos(data, syn.Offset)
		msg := syn.Error()
		if msg == "" {
			msg = "unexpected data after the policy"
		}
		ps.add(line, col, "", "JSON syntax: %s", msg)
	case errors.As(err, &typ):
		line, col := offsetPos(data, typ.Offset)
		ps.add(line, col, typ.Field, "is JSON %s; expected %s", typ.Value, typ.Type)
	default:
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			ps.add(0, 0, "", "unknown field %s", f)
			return
		}
		ps.add(0, 0, "", "%s", strings.TrimPrefix(msg, "json: "))
	}
}

func offsetPos(data []byte, off int64) (int, int) {
	if off < 0 || off > int64(len(data)) {
		return 0, 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
