package render

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lodge/lxcfs/cgstats"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// goldenCases are directories under testdata, each a container's cgroup
// files as the kernel shows them: v1 (every controller on v1, swap
// accounted, a cpuset and a quota), v2 (cgroup2 only, usage above the
// limit, no swap allowed), hybrid (this project's CI machine: v1 controllers
// and a cgroup2 hierarchy without controllers, no limits, no swap
// accounting) and v2-quota-view (cpu_quota_view on, memory.max 0).
var goldenCases = []string{"v1", "v2", "hybrid", "v2-quota-view"}

// goldenStart and goldenNow fix the clock: the container has run 1 h 0 min
// 30.25 s.
var (
	goldenStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	goldenNow   = goldenStart.Add(time.Hour + 30*time.Second + 250*time.Millisecond)
)

// files is every view of one case, in a fixed order.
type files []struct{ name, text string }

func (f files) get(name string) string {
	for _, x := range f {
		if x.name == name {
			return x.text
		}
	}
	return ""
}

func TestGolden(t *testing.T) {
	cgstats.HostOnline = mustAbs(t, "testdata/host/online")
	for _, name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			out := renderCase(t, name)
			var sb strings.Builder
			for _, f := range out {
				fmt.Fprintf(&sb, "==> %s <==\n%s", f.name, f.text)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./lxcfs/render -update to create it)", err)
			}
			if got := sb.String(); got != string(want) {
				t.Errorf("%s differs from the output; if the change is intended, run go test ./lxcfs/render -update and review the diff.\ngot:\n%s", golden, got)
			}
			checkConsistent(t, out)
		})
	}
}

// renderCase reads a case's cgroup files with cgstats and renders them all.
func renderCase(t *testing.T, name string) files {
	t.Helper()
	dir := filepath.Join("testdata", name)
	cg := readCgroups(t, dir)
	_, err := os.Stat(filepath.Join(dir, "quota_view"))
	quotaView := err == nil
	mem, err := cgstats.ReadMemory(cg)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := cgstats.ReadCPU(cg)
	if err != nil {
		t.Fatal(err)
	}
	io, err := cgstats.ReadIO(cg)
	if err != nil && !errors.Is(err, cgstats.ErrNoController) {
		t.Fatal(err)
	}
	tasks, _, err := cgstats.ReadTasks(cg, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var load Load
	for range 12 { // one minute of samples with 3 active tasks
		load.Sample(3)
	}
	load.Running, load.Blocked, load.Total = 2, 1, len(tasks)
	host := func(f string) string { return string(mustRead(t, filepath.Join("testdata/host", f))) }
	times := Times{CPU: cpu, QuotaView: quotaView, Started: goldenStart, Now: goldenNow, Running: 2, Blocked: 1}
	return files{
		{"meminfo", Meminfo(host("meminfo"), mem)},
		{"swaps", Swaps(host("meminfo"), mem)},
		{"cpuinfo", Cpuinfo(host("cpuinfo"), cpu, quotaView)},
		{"stat", Stat(host("stat"), times)},
		{"uptime", Uptime(times)},
		{"loadavg", Loadavg(load)},
		{"diskstats", Diskstats(host("diskstats"), io)},
		{"online", CPUList(len(VisibleCPUs(cpu, quotaView))) + "\n"},
		{"tasks", fmt.Sprintln(tasks)},
	}
}

// readCgroups reads a case's "key=directory" lines into a cgstats map.
func readCgroups(t *testing.T, dir string) cgstats.Cgroups {
	cg := cgstats.Cgroups{}
	for _, line := range strings.Fields(string(mustRead(t, filepath.Join(dir, "cgroups")))) {
		i := strings.LastIndexByte(line, '=')
		cg[line[:i]] = mustAbs(t, filepath.Join(dir, line[i+1:]))
	}
	return cg
}

// checkConsistent asserts what must hold between the files whatever the
// numbers: one CPU count everywhere, a positive MemTotal, idle time that
// adds up.
func checkConsistent(t *testing.T, f files) {
	t.Helper()
	processors := strings.Count(f.get("cpuinfo"), "processor\t: ")
	cpuLines := 0
	var idleTicks uint64
	for _, line := range strings.Split(f.get("stat"), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[0], "cpu") && fields[0] != "cpu" {
			cpuLines++
			n, _ := strconv.ParseUint(fields[4], 10, 64)
			idleTicks += n
		}
	}
	online := strings.TrimSpace(f.get("online"))
	onlineCount := 1
	if _, hi, ok := strings.Cut(online, "-"); ok {
		n, _ := strconv.Atoi(hi)
		onlineCount = n + 1
	}
	if processors != cpuLines || processors != onlineCount || processors == 0 {
		t.Errorf("CPU counts disagree: cpuinfo %d processors, stat %d cpuN lines, online %q", processors, cpuLines, online)
	}
	mem := hostValues(f.get("meminfo"))
	if mem["MemTotal"] == 0 || mem["MemFree"] > mem["MemTotal"] || mem["MemAvailable"] > mem["MemTotal"] || mem["MemAvailable"] < mem["MemFree"] {
		t.Errorf("meminfo is inconsistent: MemTotal %d MemFree %d MemAvailable %d", mem["MemTotal"], mem["MemFree"], mem["MemAvailable"])
	}
	if mem["SwapFree"] > mem["SwapTotal"] {
		t.Errorf("SwapFree %d > SwapTotal %d", mem["SwapFree"], mem["SwapTotal"])
	}
	up := strings.Fields(f.get("uptime"))
	if want := fmt.Sprintf("%d.%02d", idleTicks/100, idleTicks%100); len(up) != 2 || up[1] != want {
		t.Errorf("uptime idle %v, want the stat idle sum %s", up, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
