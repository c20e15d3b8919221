// Command procread measures how long reading a file takes, the way a
// program such as free or top reads /proc: open, read to the end, close.
// lodge-bench copies it into containers to time the /proc views from inside.
//
//	procread FILE ITERATIONS READERS [PAUSE_MS]
//
// READERS threads read concurrently, ITERATIONS times each; it prints the
// mean time per read in microseconds, averaged over the readers. With
// PAUSE_MS, each reader waits that long before each read, untimed: longer
// than a server's cache interval, every read misses its cache.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: procread FILE ITERATIONS READERS [PAUSE_MS]")
		os.Exit(2)
	}
	file := os.Args[1]
	n, err1 := strconv.Atoi(os.Args[2])
	readers, err2 := strconv.Atoi(os.Args[3])
	pauseMS, err3 := 0, error(nil)
	if len(os.Args) == 5 {
		pauseMS, err3 = strconv.Atoi(os.Args[4])
	}
	if err1 != nil || err2 != nil || err3 != nil || n < 1 || readers < 1 || pauseMS < 0 {
		fmt.Fprintln(os.Stderr, "procread: ITERATIONS and READERS must be positive numbers, PAUSE_MS not negative")
		os.Exit(2)
	}
	pause := time.Duration(pauseMS) * time.Millisecond
	perRead := make([]time.Duration, readers)
	errs := make([]error, readers)
	var start, done sync.WaitGroup
	start.Add(1)
	for r := range readers {
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // one kernel thread per reader, like separate programs
			buf := make([]byte, 64*1024)
			start.Wait()
			var spent time.Duration
			for range n {
				time.Sleep(pause)
				began := time.Now()
				if err := readAll(file, buf); err != nil {
					errs[r] = err
					return
				}
				spent += time.Since(began)
			}
			perRead[r] = spent / time.Duration(n)
		}()
	}
	start.Done()
	done.Wait()
	var total time.Duration
	for r := range readers {
		if errs[r] != nil {
			fmt.Fprintf(os.Stderr, "procread: %s: %v\n", file, errs[r])
			os.Exit(1)
		}
		total += perRead[r]
	}
	fmt.Printf("%.1f\n", float64(total.Nanoseconds())/float64(readers)/1000)
}

// readAll opens, reads to the end and closes, with raw system calls.
func readAll(file string, buf []byte) error {
	fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}
