// Package parallel calls a function for many items, a bounded number at a
// time: for work on each of hundreds of containers that mostly waits (on
// files, /proc, a helper process), where one at a time leaves the CPUs idle
// and all at once would start hundreds of goroutines or processes.
package parallel

import "sync"

// ForEach calls fn(i) for every i in [0, n), at most workers calls at a
// time, and returns once all have returned. fn must be safe to call
// concurrently; each i is passed exactly once.
func ForEach(n, workers int, fn func(i int)) {
	workers = max(1, min(workers, n))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
