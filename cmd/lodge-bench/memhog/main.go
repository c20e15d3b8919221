// Command memhog holds a given amount of touched memory: lodge-bench copies
// it into containers to checkpoint and restore them with that much memory.
//
//	memhog MIB READYFILE [dirty]
//
// It allocates MIB MiB of anonymous memory, writes a pattern into every
// byte (so that every page is resident and none is the shared zero page),
// writes its pid to READYFILE (through a rename, so the file appears
// complete) and then sleeps until killed. With "dirty" it does not sleep
// but keeps every page dirty: it writes one byte of each page, pass after
// pass, with a 10 ms pause between passes (a busy tenant, for the
// migration benchmark).
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// held keeps the memory reachable for the life of the process.
var held []byte

func main() {
	dirty := len(os.Args) == 4 && os.Args[3] == "dirty"
	if len(os.Args) != 3 && !dirty {
		fmt.Fprintln(os.Stderr, "usage: memhog MIB READYFILE [dirty]")
		os.Exit(2)
	}
	mib, err := strconv.Atoi(os.Args[1])
	if err != nil || mib < 1 {
		fmt.Fprintln(os.Stderr, "memhog: MIB must be a positive number")
		os.Exit(2)
	}
	held = make([]byte, mib<<20)
	fill(held)
	ready := os.Args[2]
	if err := os.WriteFile(ready+".tmp", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "memhog: %v\n", err)
		os.Exit(1)
	}
	if err := os.Rename(ready+".tmp", ready); err != nil {
		fmt.Fprintf(os.Stderr, "memhog: %v\n", err)
		os.Exit(1)
	}
	for !dirty {
		time.Sleep(time.Hour)
	}
	for pass := byte(1); ; pass++ {
		for i := 0; i < len(held); i += 4096 {
			held[i] = pass
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fill writes a non-zero pattern into buf: one page by hand, then doubling
// copies.
func fill(buf []byte) {
	n := min(len(buf), 4096)
	for i := range n {
		buf[i] = byte(i%251 + 1)
	}
	for n < len(buf) {
		n += copy(buf[n:], buf[:n])
	}
}
