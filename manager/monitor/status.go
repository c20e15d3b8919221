package monitor

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// statusPipe reports the first boot to the CLI that started the monitor, one
// line per event: "progress TEXT", then "ready PID" or "error TEXT". The CLI
// returns when it reads ready or error; the pipe is closed after either.
type statusPipe struct {
	mu sync.Mutex
	f  *os.File
}

func (s *statusPipe) write(kind, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	text = strings.ReplaceAll(text, "\n", " ")
	fmt.Fprintf(s.f, "%s %s\n", kind, text)
}

func (s *statusPipe) progress(format string, args ...any) {
	s.write("progress", fmt.Sprintf(format, args...))
}

func (s *statusPipe) ready(pid int) {
	s.write("ready", fmt.Sprint(pid))
	s.close()
}

func (s *statusPipe) fail(err error) {
	s.write("error", err.Error())
	s.close()
}

func (s *statusPipe) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
