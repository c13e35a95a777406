package inventory

import (
	"time"

	"golang.org/x/sys/unix"
)

func timeFromTimeval(tv *unix.Timeval) time.Time {
	return time.Unix(tv.Sec, int64(tv.Usec)*1000).UTC()
}
