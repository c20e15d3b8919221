package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// lodge serve --metrics and lodge top against what the kernel says: each
// figure a scrape reports is compared with the cgroup's (or the host veth's)
// file read just before and just after the scrape.

// startMetrics starts lodge serve --metrics on a port the kernel picks and
// returns the URL of its metrics; the serve ends with the test.
func (e *env) startMetrics() string {
	e.t.Helper()
	cmd := e.command(context.Background(), "serve", "--metrics", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			e.t.Errorf("lodge serve --metrics: %v\n%s", err, logs)
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "Serving metrics on "); ok {
				ready <- url
			}
		}
		close(ready)
	}()
	select {
	case url, ok := <-ready:
		if !ok {
			e.t.Fatalf("lodge serve --metrics exited before it listened:\n%s", logs)
		}
		return url
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		e.t.Fatalf("lodge serve --metrics did not listen within a minute:\n%s", logs)
	}
	return ""
}

// scrape gets and parses the metrics, as Prometheus would.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the metrics: %v", err)
	}
	return families
}

// sample is the value of metric name for container (and more labels,
// as name=value pairs), and whether it is there.
func sample(families map[string]*dto.MetricFamily, name, container string, labels ...string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{}
	if container != "" {
		want["container"] = container
	}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		matched := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				matched++
			}
		}
		if matched == len(want) {
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// cgroupFile reads a number from a file of a container's cgroup (see
// cgroupPath).
func cgroupFile(t *testing.T, cgroups map[string]string, controller, v1, v2 string) float64 {
	t.Helper()
	path := cgroupPath(cgroups, controller, v1, v2)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// cgroupPath is file v1 in the v1 hierarchy whose key names controller,
// or file v2 in the cgroup2 hierarchy if none does.
func cgroupPath(cgroups map[string]string, controller, v1, v2 string) string {
	for key, dir := range cgroups {
		if key != "unified" && strings.Contains(","+key+",", ","+controller+",") {
			return filepath.Join(dir, v1)
		}
	}
	return filepath.Join(cgroups["unified"], v2)
}

// bracketed checks that a figure read at about the same time as two
// readings of the kernel's lies between them, give or take slack.
func bracketed(t *testing.T, what string, got, before, after, slack float64) {
	t.Helper()
	lo, hi := min(before, after)-slack, max(before, after)+slack
	if got < lo || got > hi {
		t.Errorf("%s = %.0f, the kernel said %.0f before and %.0f after", what, got, before, after)
	}
}

func TestMetricsMatchTheKernel(t *testing.T) {
	e := newEnv(t)
	subnet := fmt.Sprintf("10.203.%d", 1+int(randomHex(1)[0])%250)
	e.must("network", "create", "mt", "--subnet", subnet+".0/24")
	e.createBusybox("mem", "limits.memory=64MiB")
	e.createBusybox("few", "limits.pids=50", "network.0.network=mt", "network.0.ipv4="+subnet+".10")
	e.must("start", "mem")
	e.must("start", "few")
	// A process that holds 20 MB in a shell variable (and does not exec
	// sleep, which would drop it), detached from exec's streams.
	e.must("exec", "mem", "--", "sh", "-c",
		`sh -c 'x=$(head -c 20000000 /dev/zero | tr "\0" a); sleep 100000; echo $x' </dev/null >/dev/null 2>&1 &`)
	if r := e.pingFrom("few", subnet+".1"); r.code != 0 {
		t.Fatalf("few cannot reach its gateway: %s", r)
	}
	url := e.startMetrics()
	mem, few := e.info("mem").Cgroups, e.info("few")
	for range 300 { // a hang guard of 30 s, not a timing assertion
		if cgroupFile(t, mem, "memory", "memory.usage_in_bytes", "memory.current") >= 20e6 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	memBefore := cgroupFile(t, mem, "memory", "memory.usage_in_bytes", "memory.current")
	cpuBefore := cpuNanos(t, mem)
	host := few.NICs[0].HostIf
	txBefore := linkCounter(t, host, "tx_packets")
	first := scrape(t, url)
	memAfter := cgroupFile(t, mem, "memory", "memory.usage_in_bytes", "memory.current")
	cpuAfter := cpuNanos(t, mem)
	txAfter := linkCounter(t, host, "tx_packets")

	if memAfter < 20e6 {
		t.Fatalf("mem's cgroup uses %.0f bytes: the 20 MB process did not stay", memAfter)
	}
	if v, ok := sample(first, "lodge_container_memory_bytes", "mem"); !ok {
		t.Errorf("no memory figure for mem")
	} else {
		bracketed(t, "mem's memory", v, memBefore, memAfter, 1<<20)
	}
	if v, ok := sample(first, "lodge_container_cpu_seconds_total", "mem"); !ok || v <= 0 {
		t.Errorf("mem's CPU = %v (there: %v)", v, ok)
	} else {
		bracketed(t, "mem's CPU ns", v*1e9, cpuBefore, cpuAfter, 1e3) // v2 counts in µs
	}
	// The host end transmits what the container receives.
	if v, ok := sample(first, "lodge_container_network_receive_packets_total", "few", "nic", "eth0"); !ok || v < 1 {
		t.Errorf("few received %v packets (reported: %v); its ping got an answer", v, ok)
	} else {
		bracketed(t, "few's received packets", v, txBefore, txAfter, 0)
	}
	checkExact(t, first, "lodge_container_memory_limit_bytes", "mem", 64<<20)
	checkExact(t, first, "lodge_container_pids_limit", "few", 50)
	checkExact(t, first, "lodge_container_memory_limit_bytes", "mem",
		cgroupFile(t, mem, "memory", "memory.limit_in_bytes", "memory.max"))
	checkExact(t, first, "lodge_container_pids_limit", "few", cgroupFile(t, few.Cgroups, "pids", "pids.max", "pids.max"))
	checkPids(t, url, "mem", mem)
	checkExact(t, first, "lodge_container_state", "mem", 1, "state", "running")
	if first["process_resident_memory_bytes"] == nil || first["go_goroutines"] == nil {
		t.Errorf("no process metrics of lodge serve itself")
	}

	// CPU only goes up.
	e.must("exec", "mem", "--", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	second := scrape(t, url)
	c1, _ := sample(first, "lodge_container_cpu_seconds_total", "mem")
	c2, _ := sample(second, "lodge_container_cpu_seconds_total", "mem")
	if c1 <= 0 || c2 <= c1 {
		t.Errorf("mem's CPU went from %v to %v seconds across a busy loop", c1, c2)
	}

	t.Run("top", func(t *testing.T) { checkTop(t, e, mem) })

	// A shell that grows past the 64 MiB limit is OOM-killed.
	if r := e.run("exec", "mem", "--", "sh", "-c", `x=$(head -c 100000000 /dev/zero | tr "\0" a); echo ${#x}`); r.code == 0 {
		t.Fatalf("a 100 MB shell variable fit in 64 MiB: %s", r)
	}
	kills := cgroupKeyed(t, mem, "memory", "memory.oom_control", "memory.events", "oom_kill")
	if kills < 1 {
		t.Fatalf("the kernel counts %v OOM kills in mem", kills)
	}
	checkExact(t, scrape(t, url), "lodge_container_oom_kills_total", "mem", kills)

	e.must("stop", "few")
	stopped := scrape(t, url)
	checkExact(t, stopped, "lodge_container_state", "few", 1, "state", "stopped")
	checkExact(t, stopped, "lodge_container_state", "few", 0, "state", "running")
	if _, ok := sample(stopped, "lodge_container_memory_bytes", "few"); ok {
		t.Errorf("stopped few still has a memory figure")
	}
	if v, _ := sample(stopped, "lodge_containers", "", "state", "stopped"); v != 1 {
		t.Errorf("lodge_containers{state=stopped} = %v, want 1", v)
	}
}

// cgroupKeyed reads the value of key in a flat keyed file of a
// container's cgroup (see cgroupPath).
func cgroupKeyed(t *testing.T, cgroups map[string]string, controller, v1, v2, key string) float64 {
	t.Helper()
	path := cgroupPath(cgroups, controller, v1, v2)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	t.Fatalf("no %s in %s", key, path)
	return 0
}

// cpuNanos is the container's CPU time from cpuacct (v1) or cgroup2's
// cpu.stat, in nanoseconds.
func cpuNanos(t *testing.T, cgroups map[string]string) float64 {
	t.Helper()
	if path := cgroupPath(cgroups, "cpuacct", "cpuacct.usage", ""); filepath.Base(path) == "cpuacct.usage" {
		return cgroupFile(t, cgroups, "cpuacct", "cpuacct.usage", "")
	}
	return cgroupKeyed(t, cgroups, "cpuacct", "", "cpu.stat", "usage_usec") * 1e3
}

func linkCounter(t *testing.T, link, counter string) float64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/class/net", link, "statistics", counter))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	return v
}

func checkExact(t *testing.T, families map[string]*dto.MetricFamily, name, container string, want float64, labels ...string) {
	t.Helper()
	if got, ok := sample(families, name, container, labels...); !ok || got != want {
		t.Errorf("%s{container=%q %v} = %v (there: %v), want %v", name, container, labels, got, ok, want)
	}
}

// checkPids compares the pids figure with pids.current read before and
// after a scrape, until both readings agree (an exec's process may come
// and go between them).
func checkPids(t *testing.T, url, container string, cgroups map[string]string) {
	t.Helper()
	for range 5 {
		before := cgroupFile(t, cgroups, "pids", "pids.current", "pids.current")
		got, _ := sample(scrape(t, url), "lodge_container_pids", container)
		if after := cgroupFile(t, cgroups, "pids", "pids.current", "pids.current"); before == after {
			if got != before {
				t.Errorf("%s's pids = %v, pids.current = %v", container, got, before)
			}
			return
		}
	}
	t.Errorf("%s's pids.current never held still across a scrape", container)
}

// checkTop checks lodge top --once --format json against the same files.
func checkTop(t *testing.T, e *env, mem map[string]string) {
	before := cgroupFile(t, mem, "memory", "memory.usage_in_bytes", "memory.current")
	out := e.must("top", "--once", "--interval", "200ms", "--format", "json", "--sort", "name")
	after := cgroupFile(t, mem, "memory", "memory.usage_in_bytes", "memory.current")
	var reading struct {
		Containers []struct {
			Name             string  `json:"name"`
			State            string  `json:"state"`
			MemoryBytes      float64 `json:"memory_bytes"`
			MemoryLimitBytes float64 `json:"memory_limit_bytes"`
			PidsLimit        float64 `json:"pids_limit"`
			CPUPercent       float64 `json:"cpu_percent"`
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(out), &reading); err != nil || len(reading.Containers) != 2 {
		t.Fatalf("lodge top --once --format json: %v\n%s", err, out)
	}
	few, m := reading.Containers[0], reading.Containers[1]
	if m.Name != "mem" || few.Name != "few" || m.State != "RUNNING" {
		t.Fatalf("lodge top --sort name: %+v", reading.Containers)
	}
	bracketed(t, "top's memory of mem", m.MemoryBytes, before, after, 1<<20)
	if m.MemoryLimitBytes != 64<<20 || few.PidsLimit != 50 || m.CPUPercent < 0 {
		t.Errorf("lodge top: mem %+v, few %+v", m, few)
	}
}
