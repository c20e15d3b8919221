// Command lodge-nsexec enters a running container's namespaces and runs a
// command there, on behalf of `lodge exec`.
//
// Joining user and mount namespaces needs a single-threaded process, which a Go
// program never is once its runtime starts. So all of the work is in nsexec.c, a
// constructor that runs before the Go runtime and never returns to it; the Go
// main below only runs when the helper is started by hand. It is a separate
// binary so that the lodge binary itself needs no cgo, which keeps every lodge
// start-up (CLI, monitor, container set-up) about a millisecond shorter.
package main

// #cgo CFLAGS: -Wall -Werror -O2
import "C"

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "lodge-nsexec is started by `lodge exec`; run that instead")
	os.Exit(125)
}
