package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const sampleDumpLog = `(00.000000) CRIU run id = x
(00.000191) Version: 4.2.1 (gitid 0)
(00.070000) Found mmap_min_addr 0x10000
(00.074000) ========================================
(00.074160) Dumping processes (pid: 25426 comm: init)
(00.077189) Running network-lock scripts
(00.085000) id_map: 0 210000000 65536
(00.100000) Dumping pages (type: 59 pid: 25426)
pie: 1: Running daemon thread leader
(00.110000) mnt: 	288: 49:/ @ ./dev/shm
(00.130000) Dump UTS namespace 12 via 25426
(00.131000) net: 	Running ip addr save  
(00.151000) Writing stats
(00.152000) Dumping finished successfully
`

func TestCRIULogPhases(t *testing.T) {
	phases, total, err := criuLogPhases(sampleDumpLog, dumpStartupEnd)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		phaseStartup: 74.160,
		phaseNetwork: 7.811,              // network-lock line until id_map
		phaseOther:   3.029 + 15 + 1 + 1, // Dumping processes, id_map, Dump UTS, Writing stats
		phaseMemory:  10,
		phaseMounts:  20,
	}
	want[phaseNetwork] += 20 // ip addr save until Writing stats
	for name, ms := range want {
		if math.Abs(phases[name]-ms) > 0.001 {
			t.Errorf("%s: %.3f ms, want %.3f (all: %v)", name, phases[name], ms, phases)
		}
	}
	if total != 152 {
		t.Errorf("total %.3f ms, want 152", total)
	}
	sum := 0.0
	for _, ms := range phases {
		sum += ms
	}
	if math.Abs(sum-total) > 0.001 {
		t.Errorf("phases sum to %.3f ms, the log spans %.3f", sum, total)
	}
}

// At restore the restorers log in parallel: the gap after a restorer's
// line, while another reads its memory in, counts to memory.
func TestCRIULogPhasesRestorer(t *testing.T) {
	log := `(00.000100) Version: 4.2.1
(00.064351) Will restore in 7c020080 namespaces
(00.095944)      1: net: 	Running ip addr restore  
(00.104852)      1: mnt-v2: 	Mounting tmpfs @228 (0)
(00.120000) pie: 13: Preadv 0x24baf7400000:268435456... (1 iovs)
(00.121000) pie: 9: 9: Restored
(02.121000) pie: 13: ` + "`" + `- returned 270217216
(02.122000) Restore finished successfully. Tasks resumed.
`
	phases, total, err := criuLogPhases(log, restoreStartupEnd)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(phases[phaseMemory]-2002) > 0.001 || math.Abs(phases[phaseNetwork]-8.908) > 0.001 ||
		math.Abs(phases[phaseMounts]-15.148) > 0.001 || math.Abs(phases[phaseStartup]-64.251) > 0.001 || math.Abs(phases[phaseOther]-31.593) > 0.001 {
		t.Errorf("phases %v", phases)
	}
	if total != 2122 {
		t.Errorf("total %.3f ms, want 2122", total)
	}
}

func TestCRIULogPhasesWithoutTimestamps(t *testing.T) {
	if _, _, err := criuLogPhases("Warn  (criu/kerndat.c:1799): Hardware breakpoints\nError (x): y\n", dumpStartupEnd); err == nil {
		t.Fatal("a log without timestamps (CRIU's default level) gave phases")
	}
}

func TestCRIUTimestamp(t *testing.T) {
	for line, want := range map[string]float64{"(00.000246) File": 0.000246, "(123.500000)      1: net: x": 123.5} {
		got, _, ok := criuTimestamp(line)
		if !ok || got != want {
			t.Errorf("%q: %v %v, want %v", line, got, ok, want)
		}
	}
	for _, line := range []string{"", "pie: 1: x", "(criu/util.c:1534) x", "(12.5"} {
		if _, _, ok := criuTimestamp(line); ok {
			t.Errorf("%q parsed as a timestamp", line)
		}
	}
}

func TestImageBytes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{"pages-1.img": 4096, "core-1.img": 100, "dump.log": 5000, "restore.log": 7, "checkpoint.json": 10}
	for name, n := range files {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := imageBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != 4096+100+10 {
		t.Errorf("imageBytes = %d, want %d (logs left out)", got, 4096+100+10)
	}
}

func TestReason(t *testing.T) {
	err := &stageError{stage: stageCheckpoint, err: errors.New("lxc-checkpoint -s: exit status 1"),
		criu: "Error (criu/mount.c:724): mnt: FS mnt ./run/credentials/x dev 0x4b root / unsupported id 305\nError (criu/cr-dump.c:1975): Dumping FAILED."}
	if got := reason(err); got != "checkpoint fails: mnt: FS mnt ./run/credentials/x dev 0x4b root / unsupported id 305" {
		t.Errorf("reason = %q", got)
	}
	if got := reason(failedAt(stagePrepare, errors.New("boom"))); got != "prepare: boom" {
		t.Errorf("reason = %q", got)
	}
}

func TestLodgeDumpMs(t *testing.T) {
	ms, err := lodgeDumpMs("Checkpointed ck1 in 361 ms (285.4 KiB) and stopped it: /x\n")
	if err != nil || ms != 361 {
		t.Errorf("lodgeDumpMs = %v, %v", ms, err)
	}
	if _, err := lodgeDumpMs("Restored ck1 from /x.\n"); err == nil {
		t.Error("no error for output without `in N ms`")
	}
}
