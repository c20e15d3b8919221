package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"lodge/internal/store"
	"lodge/manager"
)

func TestTopAndMetricsCommandLines(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"top"}, exitNotRoot, ""},
		{[]string{"top", "--once", "--format", "json", "--sort", "mem", "--interval", "500ms"}, exitNotRoot, ""},
		{[]string{"top", "--format", "yaml"}, exitUsage, "table or json"},
		{[]string{"top", "--sort", "pids"}, exitUsage, "cpu, mem or name"},
		{[]string{"top", "--interval", "1ms"}, exitUsage, "too short"},
		{[]string{"top", "c1"}, exitUsage, "no arguments"},
		{[]string{"serve"}, exitUsage, "--metrics ADDR"},
		{[]string{"serve", "--metrics", "127.0.0.1:9177"}, exitNotRoot, ""},
	}
	for _, c := range cases {
		code, out := runCLI(c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("lodge %s: exit %d, output %q; want exit %d with %q", strings.Join(c.args, " "), code, out, c.code, c.want)
		}
	}
}

func TestTopRows(t *testing.T) {
	nic := func(rx, tx uint64) []manager.NICUsage {
		return []manager.NICUsage{{Name: "eth0", ReceiveBytes: rx, TransmitBytes: tx}}
	}
	prev := []manager.Usage{
		{Name: "busy", State: store.Running, CPUSeconds: 10, DiskWriteBytes: 1000, NICs: nic(100, 200)},
		{Name: "idle", State: store.Running, CPUSeconds: 5, MemoryBytes: 1 << 30},
		{Name: "restarted", State: store.Running, CPUSeconds: 50},
		{Name: "booted", State: store.Stopped},
	}
	cur := []manager.Usage{
		{Name: "booted", State: store.Running, CPUSeconds: 3},
		{Name: "busy", State: store.Running, CPUSeconds: 13, DiskWriteBytes: 5000, NICs: nic(2100, 200)},
		{Name: "idle", State: store.Running, CPUSeconds: 5, MemoryBytes: 1 << 30},
		{Name: "new", State: store.Running, CPUSeconds: 1},
		{Name: "restarted", State: store.Running, CPUSeconds: 1},
	}
	rows := topRows(prev, cur, 2*time.Second)
	sortTop(rows, "cpu")
	var order []string
	for _, r := range rows {
		order = append(order, r.Name)
	}
	// Only busy has rates; the others tie at 0 and go by name.
	if got := strings.Join(order, " "); got != "busy booted idle new restarted" {
		t.Fatalf("order by cpu = %s", got)
	}
	busy := rows[0]
	if busy.CPUPercent != 150 || busy.DiskWriteRate != 2000 || busy.ReceiveRate != 1000 || busy.TransmitRate != 0 {
		t.Errorf("busy = %+v; want 150%% CPU, 2000 B/s written, 1000 B/s received", busy)
	}
	sortTop(rows, "mem")
	if rows[0].Name != "idle" {
		t.Errorf("by mem, %s comes first, want idle", rows[0].Name)
	}

	var out bytes.Buffer
	if err := printTop(&out, "table", topReading{Containers: rows}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "NAME ") || !strings.Contains(out.String(), "1.0 GiB / -") {
		t.Errorf("table:\n%s", out.String())
	}
}
