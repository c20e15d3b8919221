package render

import "fmt"

// Load is a container's load average, kept the way the kernel keeps the
// host's (kernel/sched/loadavg.c): fixed-point averages decayed every 5 s
// by exp(-5/60), exp(-5/300) and exp(-5/900).
type Load struct {
	Running, Blocked, Total int // tasks at the last sample
	avg                     [3]uint64
}

const (
	fshift = 11
	fixed1 = 1 << fshift
)

// loadDecay is fixed1 * exp(-5 s / 1, 5, 15 min).
var loadDecay = [3]uint64{1884, 2014, 2037}

// Sample folds the number of active (running plus uninterruptible) tasks
// into the averages; call it every 5 s.
func (l *Load) Sample(active int) {
	a := uint64(max(active, 0)) * fixed1
	for i, e := range loadDecay {
		next := l.avg[i]*e + a*(fixed1-e)
		if a >= l.avg[i] {
			next += fixed1 - 1
		}
		l.avg[i] = next / fixed1
	}
}

// Loadavg renders /proc/loadavg. The last field, the most recent pid, is
// the host's in the kernel; a container has no such number of its own, so
// it is 0.
func Loadavg(l Load) string {
	s := ""
	for _, a := range l.avg {
		a += fixed1 / 200 // round to hundredths, as the kernel does
		s += fmt.Sprintf("%d.%02d ", a>>fshift, ((a&(fixed1-1))*100)>>fshift)
	}
	running := max(l.Running, 1) // the reader runs
	return fmt.Sprintf("%s%d/%d 0\n", s, running, max(l.Total, running))
}
