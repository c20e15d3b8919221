package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lodge/internal/store"
	"lodge/internal/terminal"
	"lodge/manager"
)

type topOptions struct {
	interval time.Duration
	once     bool
	format   string
	sort     string
}

var topSorts = []string{"cpu", "mem", "name"}

func newTopCmd(a *app) *cobra.Command {
	opts := topOptions{interval: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "top [--interval 2s] [--once] [--format table|json] [--sort cpu|mem|name]",
		Short: "Show the containers' CPU, memory, pids, network and disk use, live",
		Long: `Show every container's use of the host, refreshed every --interval: CPU (100%
is one CPU), memory against its limit, swap, tasks, and the network and disk
traffic per second. CPU and the rates come from two readings an interval apart,
so the first table appears after one interval. --once prints one table and
exits; --format json prints one JSON document per refresh, one per line. The
figures are those of lodge serve --metrics (docs/monitoring.md).`,
		Example: `  lodge top
  lodge top --once --format json --sort mem`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			m, err := a.manager()
			if err != nil {
				return err
			}
			return runTop(a, m, opts)
		},
	}
	cmd.Flags().DurationVar(&opts.interval, "interval", opts.interval, "time between two readings, e.g. 500ms, 2s")
	cmd.Flags().BoolVar(&opts.once, "once", false, "print one reading after one interval and exit")
	cmd.Flags().StringVar(&opts.format, "format", "table", "output format: table or json")
	cmd.Flags().StringVar(&opts.sort, "sort", "cpu", "order: cpu or mem (highest first), or name")
	return cmd
}

func (o topOptions) check() error {
	if err := checkFormatIn(o.format, "table", "json"); err != nil {
		return err
	}
	if !slices.Contains(topSorts, o.sort) {
		return usageError{fmt.Sprintf("--sort %q: use cpu, mem or name", o.sort)}
	}
	if o.interval < 100*time.Millisecond {
		return usageError{fmt.Sprintf("--interval %s is too short to measure rates: use 100ms or more", o.interval)}
	}
	return nil
}

// runTop reads the containers' usage every interval and prints what
// changed between the last two readings.
func runTop(a *app, m *manager.Manager, opts topOptions) error {
	screen, live := a.stdout.(*os.File)
	live = live && opts.format == "table" && !opts.once && terminal.IsTerminal(screen)
	prev, err := m.Usage()
	if err != nil {
		return err
	}
	prevAt := time.Now()
	for {
		time.Sleep(opts.interval)
		cur, err := m.Usage()
		if err != nil {
			return err
		}
		now := time.Now()
		rows := topRows(prev, cur, now.Sub(prevAt))
		sortTop(rows, opts.sort)
		reading := topReading{Time: now, Interval: now.Sub(prevAt).Seconds(), Containers: rows}
		if live {
			err = redrawTop(screen, reading)
		} else {
			err = printTop(a.stdout, opts.format, reading)
		}
		if err != nil {
			return err
		}
		if opts.once {
			return nil
		}
		prev, prevAt = cur, now
	}
}

// redrawTop draws the table over the previous one, in one write (no
// flicker), keeping to the terminal's height: the rows that do not fit
// are counted on the last line.
func redrawTop(screen *os.File, reading topReading) error {
	if rows, _, ok := terminal.Size(screen); ok && int(rows) >= 3 && len(reading.Containers) > int(rows)-2 {
		hidden := len(reading.Containers) - (int(rows) - 2)
		reading.Containers = reading.Containers[:int(rows)-2]
		defer fmt.Fprintf(screen, "... and %d more (lodge top --once shows them all)\x1b[K", hidden)
	}
	var table bytes.Buffer
	if err := printTop(&table, "table", reading); err != nil {
		return err
	}
	// Cursor home, each line cleared to its end, then the rest of the screen.
	frame := "\x1b[H" + strings.ReplaceAll(table.String(), "\n", "\x1b[K\n") + "\x1b[J"
	_, err := screen.WriteString(frame)
	return err
}

// topReading is one refresh of lodge top, as --format json prints it.
type topReading struct {
	Time       time.Time `json:"time"`
	Interval   float64   `json:"interval_seconds"` // between the two readings the rates come from
	Containers []topRow  `json:"containers"`
}

// topRow is a container's latest usage and its rates over the interval.
type topRow struct {
	manager.Usage
	CPUPercent    float64 `json:"cpu_percent"` // 100 = one CPU
	ReceiveRate   float64 `json:"network_receive_bytes_per_second"`
	TransmitRate  float64 `json:"network_transmit_bytes_per_second"`
	DiskReadRate  float64 `json:"disk_read_bytes_per_second"`
	DiskWriteRate float64 `json:"disk_write_bytes_per_second"`
}

// topRows pairs each container of cur with its reading in prev. A
// container that was not running then (or restarted: a counter went
// down) has no rates yet.
func topRows(prev, cur []manager.Usage, elapsed time.Duration) []topRow {
	before := map[string]manager.Usage{}
	for _, u := range prev {
		before[u.Name] = u
	}
	secs := elapsed.Seconds()
	rows := make([]topRow, 0, len(cur))
	for _, u := range cur {
		r := topRow{Usage: u}
		p, ok := before[u.Name]
		if ok && live(p.State) && live(u.State) && u.CPUSeconds >= p.CPUSeconds {
			r.CPUPercent = (u.CPUSeconds - p.CPUSeconds) / secs * 100
			r.DiskReadRate = rate(p.DiskReadBytes, u.DiskReadBytes, secs)
			r.DiskWriteRate = rate(p.DiskWriteBytes, u.DiskWriteBytes, secs)
			pr, pt := nicTotals(p.NICs)
			cr, ct := nicTotals(u.NICs)
			r.ReceiveRate, r.TransmitRate = rate(int64(pr), int64(cr), secs), rate(int64(pt), int64(ct), secs)
		}
		rows = append(rows, r)
	}
	return rows
}

// live tells whether a container in state s has a cgroup to read.
func live(s store.Status) bool { return s != store.Stopped }

func rate(before, after int64, secs float64) float64 {
	return max(float64(after-before), 0) / secs
}

func nicTotals(nics []manager.NICUsage) (received, transmitted uint64) {
	for _, n := range nics {
		received += n.ReceiveBytes
		transmitted += n.TransmitBytes
	}
	return received, transmitted
}

func sortTop(rows []topRow, by string) {
	slices.SortStableFunc(rows, func(a, b topRow) int {
		switch by {
		case "cpu":
			if c := cmp.Compare(b.CPUPercent, a.CPUPercent); c != 0 {
				return c
			}
		case "mem":
			if c := cmp.Compare(b.MemoryBytes, a.MemoryBytes); c != 0 {
				return c
			}
		}
		return strings.Compare(a.Name, b.Name)
	})
}

var topColumns = []string{"NAME", "STATE", "CPU%", "MEM/LIMIT", "SWAP", "PIDS", "NET RX/s", "NET TX/s", "DISK R/s", "DISK W/s"}

func printTop(w io.Writer, format string, reading topReading) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(reading) // one document per line
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(topColumns, "\t"))
	for _, r := range reading.Containers {
		fmt.Fprintln(tw, strings.Join(topRowCells(r), "\t"))
	}
	return tw.Flush()
}

func topRowCells(r topRow) []string {
	if !live(r.State) {
		return []string{r.Name, string(r.State), "-", "-", "-", "-", "-", "-", "-", "-"}
	}
	mem := humanBytes(r.MemoryBytes) + " / "
	if r.MemoryLimitBytes > 0 {
		mem += humanBytes(r.MemoryLimitBytes)
	} else {
		mem += "-"
	}
	pids := strconv.FormatInt(r.Pids, 10)
	if r.PidsLimit > 0 {
		pids += "/" + strconv.FormatInt(r.PidsLimit, 10)
	}
	perSecond := func(v float64) string { return humanBytes(int64(v)) + "/s" }
	return []string{
		r.Name, string(r.State), strconv.FormatFloat(r.CPUPercent, 'f', 1, 64), mem, humanBytes(r.SwapBytes), pids,
		perSecond(r.ReceiveRate), perSecond(r.TransmitRate), perSecond(r.DiskReadRate), perSecond(r.DiskWriteRate),
	}
}
