package migrate

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"lodge/internal/testreq"
)

// TestRestoreLock: the lock table drops a namespace's traffic (a ping of
// its own loopback) until unlock, and unlock is safe to repeat.
func TestRestoreLock(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.Skip(t, "root", "making a network namespace and its nftables needs root")
	}
	for _, tool := range []string{"unshare", "nsenter", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			testreq.Skip(t, tool, tool+" is missing")
		}
	}
	holder := exec.Command("unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	pid := strconv.Itoa(holder.Process.Pid)
	ping := func() error {
		return exec.Command("nsenter", "--net=/proc/"+pid+"/ns/net", "--", "ping", "-c", "1", "-W", "1", "127.0.0.1").Run()
	}
	for tries := 0; ping() != nil; tries++ { // until the holder set lo up
		if tries == 100 {
			t.Fatal("the new namespace's loopback does not answer a ping")
		}
		time.Sleep(50 * time.Millisecond)
	}

	lock, err := lockRestoredNetwork(holder.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.close()
	if ping() == nil {
		t.Fatal("a ping went through the locked namespace")
	}
	if err := lock.unlock(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("after unlock: ping: %v", err)
	}
	if err := lock.unlock(); err != nil {
		t.Fatalf("a second unlock: %v", err)
	}
}
