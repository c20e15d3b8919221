package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func lockTestStore(t *testing.T, names ...string) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := os.MkdirAll(s.ContainerDir(name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestLockWaitEndsWithContext: a waiter gives up when its context ends, with
// an error that says why, and takes nothing afterwards.
func TestLockWaitEndsWithContext(t *testing.T) {
	s := lockTestStore(t, "c1")
	held, err := s.Lock(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		l, err := s.Lock(ctx, "c1")
		l.Unlock()
		waited <- err
	}()
	waitForOpenDirs(t, s.ContainerDir("c1"), 2) // the holder's and the waiter's
	cancel()
	err = <-waited
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("cancelled wait returned %v, want context.Canceled and a word on why", err)
	}
	held.Unlock()
	if s.Busy("c1") {
		t.Error("the lock is held after its holder released it and the waiter was cancelled")
	}
	if n := openDirs(t, s.ContainerDir("c1")); n != 0 {
		t.Errorf("%d descriptors of the container's directory left open", n)
	}
}

// TestLockFollowsRecreatedContainer: a container deleted and created again
// while a caller waits for its lock: the caller gets the new one's lock.
func TestLockFollowsRecreatedContainer(t *testing.T) {
	s := lockTestStore(t, "c1")
	dir := s.ContainerDir("c1")
	held, err := s.Lock(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lock, 1)
	go func() {
		l, err := s.Lock(context.Background(), "c1")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitForOpenDirs(t, dir, 2)
	// What delete does under the lock, then a create of the same name.
	if err := os.Rename(dir, filepath.Join(s.Root, "old-c1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	held.Unlock()
	l := <-got
	defer l.Unlock()
	if l == nil {
		t.Fatal("no lock")
	}
	var locked, now unix.Stat_t
	unix.Fstat(int(l.dir.Fd()), &locked)
	unix.Stat(dir, &now)
	if locked.Ino != now.Ino {
		t.Fatal("the waiter holds the lock of the deleted directory, not the new container's")
	}
	if !s.Busy("c1") {
		t.Error("the new container is not locked")
	}
}

// TestLockDeletedWhileWaiting: a container deleted while a caller waits for
// its lock is reported as not found.
func TestLockDeletedWhileWaiting(t *testing.T) {
	s := lockTestStore(t, "c1")
	dir := s.ContainerDir("c1")
	held, err := s.Lock(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		l, err := s.Lock(context.Background(), "c1")
		l.Unlock()
		waited <- err
	}()
	waitForOpenDirs(t, dir, 2)
	if err := os.Rename(dir, filepath.Join(s.Root, "old-c1")); err != nil {
		t.Fatal(err)
	}
	held.Unlock()
	if err := <-waited; !errors.Is(err, ErrNotFound) {
		t.Fatalf("waiting on a deleted container returned %v, want ErrNotFound", err)
	}
	if _, err := s.Lock(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("locking a missing container returned %v, want ErrNotFound", err)
	}
}

// waitForOpenDirs waits until n descriptors of this process are open on dir
// (a waiter has opened it and is waiting for its lock).
func waitForOpenDirs(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang guard, not a timing assertion
	for openDirs(t, dir) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d descriptors open on %s after 30s", n, dir)
		}
		time.Sleep(time.Millisecond)
	}
}

func openDirs(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == dir {
			count++
		}
	}
	return count
}
