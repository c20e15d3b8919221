package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
)

// kind says how a metric is shown and compared.
type kind int

const (
	latency    kind = iota // milliseconds; ratio LXC/lodge, "x times faster"
	memory                 // MiB; ratio lodge/LXC
	throughput             // Gbit/s; ratio lodge/peer, "x as fast"
	roundTrip              // µs; ratio peer/lodge, "x as fast"
)

func (k kind) unit() string {
	switch k {
	case memory:
		return "MiB"
	case throughput:
		return "Gbit/s"
	case roundTrip:
		return "µs"
	}
	return "ms"
}

// target is a goal from the issue, applied to a row's ratio.
type target struct {
	Text     string  // as the report states it
	MinRatio float64 // latency: LXC/lodge at least this
	MaxRatio float64 // memory: lodge/LXC at most this
	MaxLodge float64 // lodge's median below this, in the row's unit (an absolute aim)
}

var (
	targetFaster2x = &target{Text: "≥ 2x faster", MinRatio: 2}
	targetNoLarger = &target{Text: "≤ LXC", MaxRatio: 1}
)

// row is one metric measured for lodge and LXC.
type row struct {
	Metric     string
	Kind       kind
	Lodge, LXC []float64
	Target     *target // nil: informational
	// Unavailable says why lodge's side could not be measured ("": it was).
	Unavailable string
	// LXCUnavailable says why LXC's side could not be measured ("": it was).
	LXCUnavailable string
}

func newRow(metric string, k kind, s samples, t *target) row {
	return row{Metric: metric, Kind: k, Lodge: s["lodge"], LXC: s["LXC"], Target: t}
}

// implausible says why the row's readings cannot be right, or "" when
// they can: every latency and every memory size is positive. A negative
// "host used memory per container" (the host's used memory fell while K
// containers started) means the machine's noise swamped what was
// measured, not that a container costs less than nothing; its ratio would
// count the noise as a PASS.
func (r row) implausible() string {
	for _, set := range []struct {
		runtime string
		values  []float64
	}{{"lodge", r.Lodge}, {"LXC", r.LXC}} {
		for _, v := range set.values {
			if !(v > 0) || math.IsInf(v, 0) { // NaN fails v > 0
				return fmt.Sprintf("a %s reading of %.2f %s cannot be right", set.runtime, v, r.Kind.unit())
			}
		}
	}
	return ""
}

// implausibleNotes explains each row shown as n/a for readings that cannot
// be right.
func implausibleNotes(rows []row) []string {
	var notes []string
	for _, r := range rows {
		if why := r.implausible(); why != "" {
			notes = append(notes, fmt.Sprintf("%s: n/a, %s (noise on the machine larger than the quantity measured); rerun the benchmark", r.Metric, why))
		}
	}
	return notes
}

// ratio is LXC/lodge for latency and lodge/LXC for memory, of the medians;
// false when either side has no readings or one that cannot be right.
func (r row) ratio() (float64, bool) {
	lodge, lxc := summarize(r.Lodge), summarize(r.LXC)
	if lodge.N == 0 || lxc.N == 0 || r.implausible() != "" {
		return 0, false
	}
	if r.Kind == latency || r.Kind == roundTrip {
		if lodge.Median <= 0 {
			return 0, false
		}
		return lxc.Median / lodge.Median, true
	}
	if lxc.Median <= 0 {
		return 0, false
	}
	return lodge.Median / lxc.Median, true
}

func (r row) ratioText() string {
	ratio, ok := r.ratio()
	switch {
	case !ok:
		return "n/a"
	case r.Kind == latency:
		return fmt.Sprintf("%.2fx faster", ratio)
	case r.Kind == throughput || r.Kind == roundTrip:
		return fmt.Sprintf("%.2fx as fast", ratio)
	}
	return fmt.Sprintf("%.2fx of LXC", ratio)
}

// verdict is PASS or MISS against the row's target, "-" without one.
func (r row) verdict() string {
	ratio, ok := r.ratio()
	switch {
	case r.Target == nil:
		return "-"
	case r.Target.MaxLodge > 0:
		if lodge := summarize(r.Lodge); lodge.N == 0 || r.implausible() != "" {
			return "n/a"
		} else if lodge.Median >= r.Target.MaxLodge {
			return "MISS"
		}
		return "PASS"
	case !ok:
		return "n/a"
	case r.Target.MinRatio > 0 && ratio < r.Target.MinRatio,
		r.Target.MaxRatio > 0 && ratio > r.Target.MaxRatio:
		return "MISS"
	}
	return "PASS"
}

func (r row) targetText() string {
	if r.Target == nil {
		return "-"
	}
	return r.Target.Text
}

func (r row) value(values []float64, pick func(summary) float64) string {
	s := summarize(values)
	if s.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f %s", pick(s), r.Kind.unit())
}

var tableHeader = []string{"Metric", "lodge median", "LXC median", "Ratio", "lodge p90", "LXC p90", "n", "Target", "Result"}

func (r row) cells() []string {
	med := func(s summary) float64 { return s.Median }
	p90 := func(s summary) float64 { return s.P90 }
	n := fmt.Sprintf("%d+%d", len(r.Lodge), len(r.LXC))
	if r.Unavailable != "" {
		return []string{r.Metric, "not available: " + firstLine(r.Unavailable, 60), r.value(r.LXC, med), "n/a", "-", r.value(r.LXC, p90), n, r.targetText(), "n/a"}
	}
	if r.LXCUnavailable != "" {
		// An absolute aim is lodge's alone: it passes or misses without LXC.
		result := "n/a"
		if r.Target != nil && r.Target.MaxLodge > 0 {
			result = r.verdict()
		}
		return []string{r.Metric, r.value(r.Lodge, med), "not available: " + firstLine(r.LXCUnavailable, 60), "n/a", r.value(r.Lodge, p90), "-", n, r.targetText(), result}
	}
	return []string{r.Metric, r.value(r.Lodge, med), r.value(r.LXC, med), r.ratioText(), r.value(r.Lodge, p90), r.value(r.LXC, p90), n, r.targetText(), r.verdict()}
}

// groupResult is what one group measured, and how.
type groupResult struct {
	Title    string
	Method   []string // paragraphs (Markdown)
	Commands []string // the exact commands, as a user would type them
	Rows     []row
	Notes    []string // observations made during the run
	Err      error    // the group could not run to the end
}

// markdownTable renders rows as a Markdown table.
func markdownTable(rows []row) string {
	var sb strings.Builder
	sb.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n")
	sb.WriteString("|" + strings.Repeat(" --- |", len(tableHeader)) + "\n")
	for _, r := range rows {
		sb.WriteString("| " + strings.Join(r.cells(), " | ") + " |\n")
	}
	return sb.String()
}

// textTable renders rows aligned for a terminal.
func textTable(rows []row) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
	return sb.String()
}

// firstLine is s's first line, cut to at most n bytes, for a table cell.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}
