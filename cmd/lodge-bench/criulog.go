package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Where CRIU's time goes, read from its log (level 4: every line carries
// the seconds since CRIU started, "(SS.UUUUUU)"). Each gap between two
// timestamped lines is counted to the phase of the line before it: CRIU
// logs what it is about to do ("Running ip addr save", the tmpfs mount it
// is about to archive) and the next line comes when that is done. At
// restore the restored tasks' restorers ("pie: PID: ...") log in parallel;
// a gap after one of their lines is counted to memory, which they read in
// (a 256 MiB task's preadv takes seconds while the others finish).

// CRIU's phases, as the report names them.
const (
	phaseStartup = "start-up checks (kerndat, vdso, CPU)"
	phaseNetwork = "network namespace (ip, iptables save/restore, lock)"
	phaseMounts  = "mount tree (tmpfs contents through tar)"
	phaseMemory  = "memory pages (dump: parasite and page transfer; restore: the restorer, which reads them in)"
	phaseOther   = "the rest (freeze, tasks, files, cgroups, namespaces)"
)

// criuPhaseOrder is the order phases are reported in.
var criuPhaseOrder = []string{phaseStartup, phaseMounts, phaseNetwork, phaseMemory, phaseOther}

// Where CRIU's start-up checks end, in a dump's log and a restore's.
const (
	dumpStartupEnd    = "Dumping processes (pid:"
	restoreStartupEnd = "Will restore in"
)

// criuLogPhases sums a CRIU log's time per phase, in ms. startupEnd is the
// text of the first line after the start-up checks. total is the last
// timestamp, in ms.
func criuLogPhases(log, startupEnd string) (phases map[string]float64, total float64, err error) {
	phases = map[string]float64{}
	started := false // past the start-up checks
	prevPhase, prevT, seen := "", 0.0, false
	for _, line := range strings.Split(log, "\n") {
		t, rest, ok := criuTimestamp(line)
		if !ok {
			continue
		}
		if !started && strings.Contains(rest, startupEnd) {
			started = true
		}
		if seen && t >= prevT {
			phases[prevPhase] += (t - prevT) * 1000
		}
		prevPhase = phaseStartup
		if started {
			prevPhase = criuLinePhase(rest)
		}
		prevT, seen, total = t, true, t*1000
	}
	if !seen {
		return nil, 0, fmt.Errorf("no timestamped line in CRIU's log (log level below 4?)")
	}
	return phases, total, nil
}

// criuTimestamp splits "(00.123456) text" into seconds and text.
func criuTimestamp(line string) (float64, string, bool) {
	if !strings.HasPrefix(line, "(") {
		return 0, "", false
	}
	end := strings.IndexByte(line, ')')
	if end < 0 {
		return 0, "", false
	}
	t, err := strconv.ParseFloat(strings.TrimSpace(line[1:end]), 64)
	if err != nil {
		return 0, "", false
	}
	return t, line[end+1:], true
}

// criuLinePhase is the phase a log line (after the start-up checks) is
// part of.
func criuLinePhase(text string) string {
	lower := strings.ToLower(text)
	switch {
	case strings.Contains(text, "net: "), strings.Contains(lower, "iptables"), strings.Contains(lower, "nftables"),
		strings.Contains(lower, "netns"), strings.Contains(lower, "network-lock"), strings.Contains(lower, "network lock"):
		return phaseNetwork
	case strings.Contains(text, "mnt: "), strings.Contains(text, "mnt-v2: "), strings.Contains(lower, "tmpfs"):
		return phaseMounts
	case strings.Contains(lower, "page"), strings.Contains(text, "Dumping mm"), strings.Contains(text, "pie: "):
		return phaseMemory
	}
	return phaseOther
}

// formatPhases renders phases in report order: "name 12 ms, ...".
func formatPhases(phases map[string]float64) string {
	var parts []string
	for _, name := range criuPhaseOrder {
		if ms, ok := phases[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f ms", name, ms))
		}
	}
	return strings.Join(parts, ", ")
}

// imageBytes is the size of a checkpoint directory's files without CRIU's
// logs (dump.log, restore.log): the images and, for lodge, its record.
func imageBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".log") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

// readCRIULog reads a checkpoint's CRIU log, "" when absent.
func readCRIULog(dir, name string) string {
	data, _ := os.ReadFile(filepath.Join(dir, name))
	return string(data)
}
