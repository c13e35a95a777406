package gossip

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
)

// Wire format. Every gossip payload starts with a one-byte message type
// followed by protobuf-wire fields (encoded by hand with protowire, so older
// agents skip fields they do not know). Signed messages (state, content,
// lease) are envelopes:
//
//	1: node  (bytes, raw libp2p peer ID of the node the message is about)
//	2: ltime (varint, the node's Lamport time when it made the message)
//	3: body  (bytes, type-specific fields)
//	4: sig   (bytes, the node's signature over signingInput)
//
// The signature covers a domain string, the fleet label, the type byte and
// fields 1-3, so a message can neither be replayed into another fleet nor
// reinterpreted as another type.

// msgType is the one-byte prefix of every gossip payload.
type msgType uint8

const (
	msgState        msgType = 1 // signed node state (without the content index)
	msgContent      msgType = 2 // signed content index
	msgLease        msgType = 3 // signed lease claim / hold / release for one group
	msgPushPull     msgType = 4 // bundle of signed messages in a push/pull exchange
	msgStateRequest msgType = 5 // "send me your own messages" (meta said we are behind)
)

func (t msgType) String() string {
	switch t {
	case msgState:
		return "state"
	case msgContent:
		return "content"
	case msgLease:
		return "lease"
	case msgPushPull:
		return "push-pull"
	case msgStateRequest:
		return "state-request"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Size and count limits. Broadcast messages must fit a UDP packet next to
// memberlist's own traffic (UDPBufferSize 1400 minus label, encryption and
// compound overhead).
const (
	maxBroadcastLen    = 1100     // one signed message carried by gossip
	maxDirectLen       = 64 << 10 // one user message sent over a stream
	maxPushPullLen     = 8 << 20  // one push/pull bundle
	maxPushPullEntries = 3 * 4096 // signed messages in one bundle
	maxNodeIDLen       = 64
	maxSigLen          = 128

	maxHostnameLen = 253
	maxShortLen    = 64 // site, ring, tag, agent version, lease group
	maxTags        = 32
	maxResultField = 64 // source, package or version of an update result
	maxAddrs       = 16
	maxAddrLen     = 256
	maxDigestLen   = 128
	maxKeys        = 8
	fingerprintLen = 8

	signingDomain = "patchring-gossip-v1\x00"
	metaVersion   = 1
)

// errMalformed marks input that could not be decoded; errOversized input
// that exceeds a limit. Both are dropped and counted.
var (
	errMalformed = errors.New("malformed gossip message")
	errOversized = errors.New("oversized gossip message")
)

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// field is one decoded protobuf-wire field of the kinds we use.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// parseFields walks b and calls fn for every varint or bytes field; fields of
// other wire types are skipped so that newer agents can add them.
func parseFields(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformedf("field tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return malformedf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.VarintType && typ != protowire.BytesType {
			continue
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func (f field) bytes(name string, maxLen int) ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, malformedf("%s: wire type %d, want bytes", name, f.typ)
	}
	if len(f.b) > maxLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", errOversized, name, len(f.b), maxLen)
	}
	return f.b, nil
}

func (f field) str(name string, maxLen int) (string, error) {
	b, err := f.bytes(name, maxLen)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", malformedf("%s: not UTF-8", name)
	}
	return string(b), nil
}

func (f field) uint(name string) (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, malformedf("%s: wire type %d, want varint", name, f.typ)
	}
	return f.u, nil
}

func (f field) time(name string) (time.Time, error) {
	u, err := f.uint(name)
	if err != nil {
		return time.Time{}, err
	}
	return fromMillis(protowire.DecodeZigZag(u)), nil
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendUintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendTimeField(b []byte, num protowire.Number, t time.Time) []byte {
	return appendUintField(b, num, protowire.EncodeZigZag(toMillis(t)))
}

func appendBoolField(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return appendUintField(b, num, 1)
}

// toMillis maps the zero time to 0 so that "unset" survives the wire.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// envelope is a signed message about one node.
type envelope struct {
	typ   msgType
	node  peer.ID
	ltime uint64
	body  []byte
	sig   []byte
}

func (e *envelope) unsigned() []byte {
	b := make([]byte, 0, len(e.node)+len(e.body)+16)
	b = appendBytesField(b, 1, []byte(e.node))
	b = appendUintField(b, 2, e.ltime)
	b = appendBytesField(b, 3, e.body)
	return b
}

// signingInput is what a node signs: domain, fleet label, type, fields 1-3.
func (e *envelope) signingInput(label string) []byte {
	u := e.unsigned()
	b := make([]byte, 0, len(signingDomain)+len(label)+len(u)+8)
	b = append(b, signingDomain...)
	b = protowire.AppendString(b, label)
	b = append(b, byte(e.typ))
	return append(b, u...)
}

func (e *envelope) marshal() []byte {
	b := []byte{byte(e.typ)}
	b = append(b, e.unsigned()...)
	return appendBytesField(b, 4, e.sig)
}

func isSigned(t msgType) bool {
	return t == msgState || t == msgContent || t == msgLease
}

// unmarshalEnvelope decodes a signed message (type byte included). It checks
// shape and limits only; the signature is checked by the caller.
func unmarshalEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) == 0 {
		return e, malformedf("empty message")
	}
	if len(b) > maxDirectLen {
		return e, fmt.Errorf("%w: %d bytes, limit %d", errOversized, len(b), maxDirectLen)
	}
	e.typ = msgType(b[0])
	if !isSigned(e.typ) {
		return e, malformedf("type %s is not a signed message", e.typ)
	}
	var haveNode, haveSig bool
	err := parseFields(b[1:], func(f field) error {
		switch f.num {
		case 1:
			v, err := f.bytes("node", maxNodeIDLen)
			if err != nil {
				return err
			}
			id, err := peer.IDFromBytes(v)
			if err != nil {
				return malformedf("node: %v", err)
			}
			e.node, haveNode = id, true
		case 2:
			v, err := f.uint("ltime")
			if err != nil {
				return err
			}
			e.ltime = v
		case 3:
			v, err := f.bytes("body", maxDirectLen)
			if err != nil {
				return err
			}
			e.body = v
		case 4:
			v, err := f.bytes("sig", maxSigLen)
			if err != nil {
				return err
			}
			e.sig, haveSig = v, true
		}
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("decode %s envelope: %w", e.typ, err)
	}
	switch {
	case !haveNode:
		return e, malformedf("decode %s envelope: no node ID", e.typ)
	case !haveSig:
		return e, malformedf("decode %s envelope: no signature", e.typ)
	case e.ltime == 0:
		return e, malformedf("decode %s envelope: no Lamport time", e.typ)
	}
	return e, nil
}

// stateBody is the body of a msgState envelope.
type stateBody struct {
	Hostname string
	Site     string
	State    State // Content is carried separately (msgContent)
	Keyring  KeyringInfo
	Leaving  bool // the node is leaving the pool on purpose
}

func (s *stateBody) marshal() []byte {
	var b []byte
	b = appendStringField(b, 1, s.Hostname)
	b = appendStringField(b, 2, s.Site)
	st := &s.State
	b = appendStringField(b, 3, st.Ring)
	for _, t := range st.Tags {
		b = appendBytesField(b, 4, []byte(t))
	}
	for _, a := range st.Addrs {
		b = appendBytesField(b, 5, []byte(a))
	}
	b = appendUintField(b, 6, st.PolicyVersion)
	b = appendStringField(b, 7, st.InventoryDigest)
	b = appendUintField(b, 8, uint64(st.Updates.Pending))
	b = appendUintField(b, 9, uint64(st.Updates.Installed))
	b = appendUintField(b, 10, uint64(st.Updates.Failed))
	b = appendBoolField(b, 11, st.Reboot.Required)
	b = appendTimeField(b, 12, st.Reboot.Since)
	b = appendTimeField(b, 13, st.Reboot.Deadline)
	b = appendBoolField(b, 14, st.Reboot.RefusedByUser)
	b = appendStringField(b, 15, st.AgentVersion)
	b = appendTimeField(b, 16, st.LastUpdate)
	b = appendStringField(b, 17, s.Keyring.Primary)
	for _, k := range s.Keyring.Installed {
		b = appendBytesField(b, 18, []byte(k))
	}
	b = appendBoolField(b, 19, s.Leaving)
	x := st.Exposure
	b = appendUintField(b, 23, uint64(x.Critical))
	b = appendUintField(b, 24, uint64(x.High))
	b = appendUintField(b, 25, uint64(x.Medium))
	b = appendUintField(b, 26, uint64(x.Low))
	b = appendUintField(b, 27, uint64(x.KEV))
	b = appendUintField(b, 28, uint64(x.NoFix))
	b = appendUintField(b, 29, x.AdvisoryVersion)
	if len(st.Results) > 0 {
		ids, ok := encodeResults(st.Results)
		b = appendBytesField(b, 21, ids)
		b = appendBytesField(b, 22, ok)
	}
	b = appendBoolField(b, 30, st.Reboot.HookHeld)
	b = appendBoolField(b, 31, st.Reboot.Unhealthy)
	b = appendStringField(b, 32, st.Format)
	return b
}

// Update results on the wire: field 21 holds the results' IDs back to
// back (ResultIDLen bytes each, newest first), field 22 a bitmap with bit
// i (byte i/8, bit i%8) set when result i succeeded. Field 20 (one nested
// message per result with the update's names) is what agents before 0.4
// sent; it is still read.
func encodeResults(rs []UpdateResult) (ids, ok []byte) {
	ids = make([]byte, 0, len(rs)*ResultIDLen)
	ok = make([]byte, (len(rs)+7)/8)
	for i, r := range rs {
		ids = append(ids, r.ID[:]...)
		if r.Succeeded {
			ok[i/8] |= 1 << (i % 8)
		}
	}
	return ids, ok
}

// decodeResults combines fields 21 and 22.
func decodeResults(ids, ok []byte) ([]UpdateResult, error) {
	if len(ids)%ResultIDLen != 0 {
		return nil, malformedf("update results: %d bytes of IDs is not a multiple of %d", len(ids), ResultIDLen)
	}
	n := len(ids) / ResultIDLen
	if n > MaxResults {
		return nil, fmt.Errorf("%w: more than %d update results", errOversized, MaxResults)
	}
	if len(ok) != (n+7)/8 {
		return nil, malformedf("update results: %d bytes of outcomes for %d results, want %d", len(ok), n, (n+7)/8)
	}
	out := make([]UpdateResult, n)
	for i := range out {
		copy(out[i].ID[:], ids[i*ResultIDLen:])
		if out[i].ID == (ResultID{}) {
			return nil, malformedf("update result %d: no update ID", i)
		}
		out[i].Succeeded = ok[i/8]&(1<<(i%8)) != 0
	}
	return out, nil
}

// decodeLegacyResult reads a field 20 result: 1 source, 2 package,
// 3 version, 4 succeeded.
func decodeLegacyResult(f field) (UpdateResult, error) {
	v, err := f.bytes("update result", 3*(maxResultField+3)+2)
	if err != nil {
		return UpdateResult{}, err
	}
	var source, pkg, version string
	var succeeded bool
	err = parseFields(v, func(f field) error {
		var err error
		switch f.num {
		case 1:
			source, err = f.str("result source", maxResultField)
		case 2:
			pkg, err = f.str("result package", maxResultField)
		case 3:
			version, err = f.str("result version", maxResultField)
		case 4:
			succeeded, err = boolField(f, "result succeeded")
		}
		return err
	})
	if err != nil {
		return UpdateResult{}, fmt.Errorf("update result: %w", err)
	}
	if pkg == "" || version == "" {
		return UpdateResult{}, malformedf("update result %s/%s: package and version are required", pkg, version)
	}
	return NewUpdateResult(source, pkg, version, succeeded), nil
}

func unmarshalStateBody(b []byte) (stateBody, error) {
	var s stateBody
	st := &s.State
	var resultIDs, resultOK []byte // fields 21 and 22
	err := parseFields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			s.Hostname, err = f.str("hostname", maxHostnameLen)
		case 2:
			s.Site, err = f.str("site", maxShortLen)
		case 3:
			st.Ring, err = f.str("ring", maxShortLen)
		case 4:
			if len(st.Tags) >= maxTags {
				return fmt.Errorf("%w: more than %d tags", errOversized, maxTags)
			}
			var t string
			t, err = f.str("tag", maxShortLen)
			st.Tags = append(st.Tags, t)
		case 5:
			if len(st.Addrs) >= maxAddrs {
				return fmt.Errorf("%w: more than %d addresses", errOversized, maxAddrs)
			}
			var a string
			a, err = f.str("addr", maxAddrLen)
			st.Addrs = append(st.Addrs, a)
		case 6:
			st.PolicyVersion, err = f.uint("policy version")
		case 7:
			st.InventoryDigest, err = f.str("inventory digest", maxDigestLen)
		case 8:
			st.Updates.Pending, err = countField(f, "pending")
		case 9:
			st.Updates.Installed, err = countField(f, "installed")
		case 10:
			st.Updates.Failed, err = countField(f, "failed")
		case 11:
			st.Reboot.Required, err = boolField(f, "reboot required")
		case 12:
			st.Reboot.Since, err = f.time("reboot since")
		case 13:
			st.Reboot.Deadline, err = f.time("reboot deadline")
		case 14:
			st.Reboot.RefusedByUser, err = boolField(f, "reboot refused")
		case 15:
			st.AgentVersion, err = f.str("agent version", maxShortLen)
		case 16:
			st.LastUpdate, err = f.time("last update")
		case 17:
			s.Keyring.Primary, err = f.str("primary key fingerprint", 2*fingerprintLen)
		case 18:
			if len(s.Keyring.Installed) >= maxKeys {
				return fmt.Errorf("%w: more than %d key fingerprints", errOversized, maxKeys)
			}
			var k string
			k, err = f.str("key fingerprint", 2*fingerprintLen)
			s.Keyring.Installed = append(s.Keyring.Installed, k)
		case 19:
			s.Leaving, err = boolField(f, "leaving")
		case 20:
			if len(st.Results) >= MaxResults {
				return fmt.Errorf("%w: more than %d update results", errOversized, MaxResults)
			}
			var r UpdateResult
			r, err = decodeLegacyResult(f)
			st.Results = append(st.Results, r)
		case 21:
			if resultIDs != nil {
				return malformedf("update result IDs twice")
			}
			resultIDs, err = f.bytes("update result IDs", MaxResults*ResultIDLen)
			if resultIDs == nil {
				resultIDs = []byte{}
			}
		case 23:
			st.Exposure.Critical, err = countField(f, "exposure critical")
		case 24:
			st.Exposure.High, err = countField(f, "exposure high")
		case 25:
			st.Exposure.Medium, err = countField(f, "exposure medium")
		case 26:
			st.Exposure.Low, err = countField(f, "exposure low")
		case 27:
			st.Exposure.KEV, err = countField(f, "exposure kev")
		case 28:
			st.Exposure.NoFix, err = countField(f, "exposure no fix")
		case 29:
			st.Exposure.AdvisoryVersion, err = f.uint("advisory version")
		case 22:
			if resultOK != nil {
				return malformedf("update result outcomes twice")
			}
			resultOK, err = f.bytes("update result outcomes", (MaxResults+7)/8)
			if resultOK == nil {
				resultOK = []byte{}
			}
		case 30:
			st.Reboot.HookHeld, err = boolField(f, "reboot held by hook")
		case 31:
			st.Reboot.Unhealthy, err = boolField(f, "unhealthy after reboot")
		case 32:
			st.Format, err = f.str("package format", maxShortLen)
		}
		return err
	})
	if err == nil && (resultIDs != nil || resultOK != nil) {
		var rs []UpdateResult
		if rs, err = decodeResults(resultIDs, resultOK); err == nil {
			if len(st.Results)+len(rs) > MaxResults {
				err = fmt.Errorf("%w: more than %d update results", errOversized, MaxResults)
			}
			st.Results = append(st.Results, rs...)
		}
	}
	if err != nil {
		return stateBody{}, fmt.Errorf("decode state: %w", err)
	}
	return s, nil
}

const maxCount = 1 << 31

func countField(f field, name string) (int, error) {
	v, err := f.uint(name)
	if err != nil {
		return 0, err
	}
	if v >= maxCount {
		return 0, malformedf("%s: %d out of range", name, v)
	}
	return int(v), nil
}

func boolField(f field, name string) (bool, error) {
	v, err := f.uint(name)
	if err != nil {
		return false, err
	}
	if v > 1 {
		return false, malformedf("%s: %d is not a bool", name, v)
	}
	return v == 1, nil
}

// leasePhase is the lifecycle of one node's lease in one group.
type leasePhase uint8

const (
	leaseClaim    leasePhase = 1 // wants a slot, settling
	leaseHeld     leasePhase = 2 // holds a slot until expiry
	leaseReleased leasePhase = 3 // gave it back
)

// leaseBody is the body of a msgLease envelope.
type leaseBody struct {
	Group  string
	Phase  leasePhase
	Expiry time.Time
}

func (l *leaseBody) marshal() []byte {
	var b []byte
	b = appendStringField(b, 1, l.Group)
	b = appendUintField(b, 2, uint64(l.Phase))
	return appendTimeField(b, 3, l.Expiry)
}

func unmarshalLeaseBody(b []byte) (leaseBody, error) {
	var l leaseBody
	err := parseFields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			l.Group, err = f.str("group", maxShortLen)
		case 2:
			var v uint64
			v, err = f.uint("phase")
			if err == nil && (v < uint64(leaseClaim) || v > uint64(leaseReleased)) {
				err = malformedf("phase %d unknown", v)
			}
			l.Phase = leasePhase(v)
		case 3:
			l.Expiry, err = f.time("expiry")
		}
		return err
	})
	if err == nil && l.Group == "" {
		err = malformedf("no group")
	}
	if err == nil && l.Phase == 0 {
		err = malformedf("no phase")
	}
	if err != nil {
		return leaseBody{}, fmt.Errorf("decode lease: %w", err)
	}
	return l, nil
}

// pushPull is the delegate's LocalState: the sender's Lamport time and every
// signed message it holds.
type pushPull struct {
	ltime    uint64
	messages [][]byte
}

func (p *pushPull) marshal() []byte {
	n := 16
	for _, m := range p.messages {
		n += len(m) + 4
	}
	b := make([]byte, 1, n)
	b[0] = byte(msgPushPull)
	b = appendUintField(b, 1, p.ltime)
	for _, m := range p.messages {
		b = appendBytesField(b, 2, m)
	}
	return b
}

func unmarshalPushPull(b []byte) (pushPull, error) {
	var p pushPull
	if len(b) == 0 || msgType(b[0]) != msgPushPull {
		return p, malformedf("push/pull: bad type prefix")
	}
	if len(b) > maxPushPullLen {
		return p, fmt.Errorf("%w: push/pull of %d bytes, limit %d", errOversized, len(b), maxPushPullLen)
	}
	err := parseFields(b[1:], func(f field) error {
		switch f.num {
		case 1:
			v, err := f.uint("ltime")
			p.ltime = v
			return err
		case 2:
			if len(p.messages) >= maxPushPullEntries {
				return fmt.Errorf("%w: more than %d messages", errOversized, maxPushPullEntries)
			}
			v, err := f.bytes("message", maxDirectLen)
			if err != nil {
				return err
			}
			p.messages = append(p.messages, v)
		}
		return nil
	})
	if err != nil {
		return pushPull{}, fmt.Errorf("decode push/pull: %w", err)
	}
	return p, nil
}

func marshalStateRequest(from peer.ID) []byte {
	b := []byte{byte(msgStateRequest)}
	return appendBytesField(b, 1, []byte(from))
}

func unmarshalStateRequest(b []byte) (peer.ID, error) {
	var id peer.ID
	if len(b) == 0 || msgType(b[0]) != msgStateRequest {
		return "", malformedf("state request: bad type prefix")
	}
	err := parseFields(b[1:], func(f field) error {
		if f.num != 1 {
			return nil
		}
		v, err := f.bytes("node", maxNodeIDLen)
		if err != nil {
			return err
		}
		id, err = peer.IDFromBytes(v)
		if err != nil {
			return malformedf("node: %v", err)
		}
		return nil
	})
	if err == nil && id == "" {
		err = malformedf("no node ID")
	}
	if err != nil {
		return "", fmt.Errorf("decode state request: %w", err)
	}
	return id, nil
}

// nodeMeta is the small summary in memberlist's node meta (512 bytes max).
// It is unsigned: it is only used to notice that we miss a newer signed
// state and should ask the node for it.
type nodeMeta struct {
	stateLTime    uint64
	policyVersion uint64
	site          string
	credential    []byte // the node's credential, wire form (verified by the Admitter)
}

func (m *nodeMeta) marshal() []byte {
	b := []byte{metaVersion}
	b = appendUintField(b, 1, m.stateLTime)
	b = appendUintField(b, 2, m.policyVersion)
	b = appendStringField(b, 3, m.site)
	if len(m.credential) > 0 {
		b = appendBytesField(b, 4, m.credential)
	}
	return b
}

func unmarshalMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, nil
	}
	if b[0] != metaVersion {
		return m, malformedf("meta version %d", b[0])
	}
	err := parseFields(b[1:], func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.stateLTime, err = f.uint("state ltime")
		case 2:
			m.policyVersion, err = f.uint("policy version")
		case 3:
			m.site, err = f.str("site", maxShortLen)
		case 4:
			var c []byte
			c, err = f.bytes("credential", maxCredentialLen)
			m.credential = slices.Clone(c)
		}
		return err
	})
	if err != nil {
		return nodeMeta{}, fmt.Errorf("decode meta: %w", err)
	}
	return m, nil
}
