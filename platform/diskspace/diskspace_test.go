package diskspace

import (
	"os"
	"testing"
)

func TestOfTheTempDir(t *testing.T) {
	u, err := Of(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.Total == 0 || u.Free > u.Total {
		t.Errorf("usage %+v", u)
	}
	if _, err := Of("/does/not/exist"); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing path: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
