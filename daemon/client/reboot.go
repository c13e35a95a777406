package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/patchring/patchring/daemon/apitypes"
)

// RebootStatus returns the reboot status: whether a restart is required,
// its deadline, the deferral choices and how many are left.
func (c *Client) RebootStatus(ctx context.Context) (apitypes.RebootStatus, error) {
	var st apitypes.RebootStatus
	err := c.Do(ctx, http.MethodGet, "/reboot", nil, &st)
	return st, err
}

// Defer postpones the pending restart by the choice whose Duration is
// choice (a duration equal to an offered one also works, e.g. "240m" for
// "4h") and returns the status after it. A choice the policy does not allow
// gets an error for which IsAccessDenied is true, with the reason.
func (c *Client) Defer(ctx context.Context, choice string) (apitypes.RebootStatus, error) {
	var st apitypes.RebootStatus
	err := c.Do(ctx, http.MethodPost, "/reboot/defer", apitypes.DeferRequest{Choice: choice}, &st)
	return st, err
}

// Refuse declines the pending restart where the policy allows it and
// returns the status after it.
func (c *Client) Refuse(ctx context.Context) (apitypes.RebootStatus, error) {
	var st apitypes.RebootStatus
	err := c.Do(ctx, http.MethodPost, "/reboot/refuse", apitypes.RefuseRequest{}, &st)
	return st, err
}

// RestartNow asks the daemon to restart the machine now; a restart must be
// pending. It returns once the daemon accepted the request.
func (c *Client) RestartNow(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/reboot/now", apitypes.RestartRequest{}, nil)
}

// Events streams the daemon's reboot events, starting with the current
// status, until ctx ends or the connection drops; the channel is closed
// then.
func (c *Client) Events(ctx context.Context) (<-chan apitypes.Event, error) {
	resp, err := c.Open(ctx, http.MethodGet, "/reboot/events", nil)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /reboot/events: answer is %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	ch := make(chan apitypes.Event)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		_ = readEvents(resp.Body, func(ev apitypes.Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return ch, nil
}

// maxEventSize bounds one event of the stream.
const maxEventSize = 1 << 20

// readEvents reads a text/event-stream whose data are JSON apitypes.Event
// values and calls fn for each until fn returns false or the stream ends.
// Comments, ids and retry fields are ignored; a malformed event ends the
// stream with an error.
func readEvents(r io.Reader, fn func(apitypes.Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventSize)
	var data bytes.Buffer
	var typ string
	dispatch := func() (bool, error) {
		defer func() { data.Reset(); typ = "" }()
		if data.Len() == 0 {
			return true, nil
		}
		var ev apitypes.Event
		if err := json.Unmarshal(data.Bytes(), &ev); err != nil {
			return false, fmt.Errorf("event stream: bad event: %w", err)
		}
		if ev.Type == "" {
			ev.Type = typ
		}
		return fn(ev), nil
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if ok, err := dispatch(); !ok || err != nil {
				return err
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if data.Len()+len(value)+1 > maxEventSize {
				return fmt.Errorf("event stream: event larger than %d bytes", maxEventSize)
			}
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(value)
		case "event":
			typ = string(value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return nil
}
