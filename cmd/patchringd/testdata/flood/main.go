// Command flood is a local user misusing patchringd's local API, for
// TestLocalAPIFloodedByAUser (see internal/testutil/flood).
package main

import (
	"flag"
	"os"

	"github.com/patchring/patchring/internal/testutil/flood"
)

func main() {
	sock := flag.String("socket", "", "patchringd's socket")
	streams := flag.Int("streams", 500, "event streams to open")
	idle := flag.Int("idle", 5000, "idle connections to open")
	flag.Parse()
	os.Exit(flood.Run(*sock, *streams, *idle, os.Stdin, os.Stdout))
}
