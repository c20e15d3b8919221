package tests

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"lodge/internal/testreq"
	"lodge/migrate"
	"lodge/rootfs"
)

// Checkpoints with the CRIU make deps installs: the preflight, and a dump
// of a running container that keeps it running.

func needCRIU(t *testing.T) {
	t.Helper()
	if _, err := migrate.FindCRIU(""); err != nil {
		testreq.Skip(t, "criu", err.Error())
	}
}

// TestExternalMountsMatchTheTree: every mount of a running container bound
// from outside it (host devices, the boot id, the console) is one that a
// checkpoint declares external (rootfs.ExternalMounts), so a bind added to
// the tree cannot be forgotten there.
func TestExternalMountsMatchTheTree(t *testing.T) {
	e := newEnv(t)
	e.createBusybox("x1")
	e.must("start", "x1")
	listed := map[string]bool{}
	for _, x := range rootfs.ExternalMounts("/proc") {
		listed[x.Target] = true
	}
	f, err := os.Open("/proc/" + strconv.Itoa(e.info("x1").PID) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		fields, i := strings.Fields(line), strings.Index(line, " - ")
		if len(fields) < 5 || i < 0 {
			continue
		}
		fstype, target := strings.Fields(line[i+3:])[0], fields[4]
		if fstype == "devtmpfs" || target == rootfs.BootIDTarget || target == rootfs.ConsoleTarget {
			n++
			if !listed[target] {
				t.Errorf("%s (%s) is bound from outside the container but not in rootfs.ExternalMounts", target, fstype)
			}
		}
	}
	if n < 8 {
		t.Errorf("found only %d mounts from outside the container: the check reads the wrong tree", n)
	}
}

func TestCheckpointKeepsRunning(t *testing.T) {
	needCRIU(t)
	e := newEnv(t)
	e.createBusybox("k1")
	e.must("start", "k1")
	before := e.info("k1").PID
	if out := e.must("checkpoint", "k1", "--check"); !strings.Contains(out, "can be checkpointed") {
		t.Fatalf("checkpoint --check: %s", out)
	}
	var res struct {
		Dir      string `json:"dir"`
		Bytes    int64  `json:"bytes"`
		Blockers []any  `json:"blockers"`
	}
	if err := json.Unmarshal([]byte(e.must("checkpoint", "k1", "--format", "json")), &res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"checkpoint.json", "inventory.img", "pstree.img", "dump.log"} {
		if _, err := os.Stat(filepath.Join(res.Dir, f)); err != nil {
			t.Errorf("the checkpoint lacks %s: %v", f, err)
		}
	}
	if !strings.HasPrefix(res.Dir, filepath.Join(e.root, "containers", "k1", "checkpoints")+"/") || res.Bytes == 0 {
		t.Errorf("checkpoint in %s, %d bytes", res.Dir, res.Bytes)
	}
	if i := e.info("k1"); i.State != "RUNNING" || i.PID != before {
		t.Fatalf("after the checkpoint k1 is %s with init %d (was %d)", i.State, i.PID, before)
	}
	e.must("exec", "k1", "--", "true")
	e.must("delete", "--force", "k1")
	if _, err := os.Stat(res.Dir); err == nil {
		t.Errorf("the checkpoint %s outlived its container", res.Dir)
	}
}
