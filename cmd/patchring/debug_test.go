package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func runDebugVercmp(t *testing.T, scheme, input string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{Out: &out, Err: &errOut, In: strings.NewReader(input)}
	root := newRootCmd(a)
	root.SetArgs([]string{"debug", "vercmp", "--scheme", scheme})
	err := root.Execute()
	return out.String(), err
}

func TestDebugVercmp(t *testing.T) {
	tests := []struct {
		name, scheme, in, want string
	}{
		{"deb", "deb", "1.0 1.0~rc1\n1:0 2.0\n1.0 1.00\n1.0-1 1.0-2\n", ">\n>\n=\n<\n"},
		{"deb errors go on", "deb", "1.0- 2\nlonely\n\na1 1\n1 2\n", "error: deb version \"1.0-\": revision number is empty\n" +
			"error: line 2: want two versions separated by a space, got 1 fields\n" +
			"error: line 3: want two versions separated by a space, got 0 fields\n" +
			"error: deb version \"a1\": version number does not start with digit\n<\n"},
		{"rpm", "rpm", "1.0^git1 1.0\r\n1.0~rc1 1.0\n2:1 3\nx:1 1\n", ">\n<\n>\nerror: rpm version \"x:1\": epoch is not a number\n"},
		{"no input", "deb", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runDebugVercmp(t, tt.scheme, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestDebugVercmpBadScheme(t *testing.T) {
	_, err := runDebugVercmp(t, "apk", "1 2\n")
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 2 || !strings.Contains(exit.msg, "apk") {
		t.Fatalf("err = %v, want exit code 2 naming the scheme", err)
	}
}
