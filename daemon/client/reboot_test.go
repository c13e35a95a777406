package client

import (
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/apitypes"
)

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // type/state
		wantErr string
	}{
		{"two events", "event: reboot-status\ndata: {\"type\":\"reboot-status\",\"reboot\":{\"state\":\"restart-required\"}}\n\n" +
			": keepalive\n\nevent: rebooting\ndata: {\"type\":\"rebooting\",\"reboot\":{\"state\":\"rebooting\"}}\n\n",
			[]string{"reboot-status/restart-required", "rebooting/rebooting"}, ""},
		{"CRLF and type from the event field", "event: reboot-countdown\r\ndata: {\"reboot\":{\"state\":\"deadline-near\"}}\r\n\r\n",
			[]string{"reboot-countdown/deadline-near"}, ""},
		{"data over several lines", "data: {\"type\":\"x\",\ndata: \"reboot\":{\"state\":\"s\"}}\n\n", []string{"x/s"}, ""},
		{"unfinished event is dropped", "data: {\"type\":\"x\"}\n", nil, ""},
		{"ids and retry ignored", "id: 7\nretry: 10\ndata: {\"type\":\"x\"}\n\n", []string{"x/"}, ""},
		{"bad JSON ends the stream", "data: {nope\n\ndata: {\"type\":\"x\"}\n\n", nil, "bad event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := readEvents(strings.NewReader(tt.in), func(ev apitypes.Event) bool {
				s := ev.Type + "/"
				if ev.Reboot != nil {
					s += ev.Reboot.State
				}
				got = append(got, s)
				return true
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadEventsStopsWhenAsked(t *testing.T) {
	in := strings.Repeat("data: {\"type\":\"x\"}\n\n", 5)
	n := 0
	if err := readEvents(strings.NewReader(in), func(apitypes.Event) bool { n++; return n < 2 }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("fn called %d times after asking to stop at 2", n)
	}
}

func TestReadEventsBoundsEventSize(t *testing.T) {
	in := strings.Repeat("data: "+strings.Repeat("a", 1000)+"\n", 2000)
	if err := readEvents(strings.NewReader(in), func(apitypes.Event) bool { return true }); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v", err)
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("event: reboot-status\ndata: {\"type\":\"reboot-status\",\"reboot\":{\"required\":true}}\n\n"))
	f.Add([]byte("data: {}\r\n\r\n: c\n\nid\ndata\n\n"))
	f.Add([]byte("data: {\"type\":\"x\",\ndata: \"time\":\"2026-01-01T00:00:00Z\"}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = readEvents(strings.NewReader(string(in)), func(ev apitypes.Event) bool { return true })
	})
}
