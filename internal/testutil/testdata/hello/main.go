// Command hello prints a greeting; testutil's tests build it.
package main

import "fmt"

func main() { fmt.Println("hello from a built binary") }
