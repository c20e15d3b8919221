package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressReporter draws progress on stderr: a bar redrawn in place on a
// terminal, or a line every tenth of the way (at most every few seconds)
// otherwise, so that logs of scripted runs stay short.
type progressReporter struct {
	w        io.Writer
	terminal bool
	barShown bool
	lastStep int64 // tenth of the way last printed (non-terminal)
	lastTime time.Time
}

func newProgressReporter(w io.Writer, fd uintptr) *progressReporter {
	return &progressReporter{w: w, terminal: term.IsTerminal(int(fd)), lastStep: -1}
}

func (p *progressReporter) Step(format string, args ...any) {
	p.endBar()
	p.lastStep = -1
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progressReporter) Progress(label string, done, total int64) {
	if !p.terminal {
		p.progressLine(label, done, total)
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s %s", bar(done, total), label)
	p.barShown = true
}

func (p *progressReporter) progressLine(label string, done, total int64) {
	if total <= 0 {
		if time.Since(p.lastTime) > 5*time.Second {
			fmt.Fprintf(p.w, "  %s\n", label)
			p.lastTime = time.Now()
		}
		return
	}
	if step := done * 10 / total; step != p.lastStep {
		p.lastStep = step
		fmt.Fprintf(p.w, "  %3d%% %s\n", step*10, label)
	}
}

func (p *progressReporter) endBar() {
	if p.barShown {
		fmt.Fprint(p.w, "\r\033[K")
		p.barShown = false
	}
}

// bar renders [=====>    ]  45%, or a moving marker when the total is unknown.
func bar(done, total int64) string {
	const width = 30
	if total <= 0 {
		pos := int(time.Now().UnixMilli()/150) % width
		return "[" + strings.Repeat(" ", pos) + "<=>" + strings.Repeat(" ", width-pos) + "]"
	}
	done = min(done, total)
	filled := int(done * width / total)
	arrow := ""
	if filled < width {
		arrow = ">"
	}
	return fmt.Sprintf("[%s%s%s] %3d%%", strings.Repeat("=", filled), arrow,
		strings.Repeat(" ", max(0, width-filled-len(arrow))), done*100/total)
}
