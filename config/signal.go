package config

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signal numbers as seen by programs built with glibc. The kernel
// numbers real-time signals from 32, but glibc reserves 32 and 33 for its
// threading library and reports SIGRTMIN as 34. systemd is built with glibc
// and documents its shutdown signal as SIGRTMIN+3, meaning 37, so names here
// follow glibc. SIGRTMAX is 64 (the kernel's _NSIG - 1) for every libc.
const (
	sigRTMin = 34
	sigRTMax = 64
)

const signalHint = "use a name like SIGTERM, SIGPWR, SIGRTMIN+3 or a number"

// ParseSignal parses a signal name or number: "SIGTERM", "term", "15",
// "SIGRTMIN+3" or "RTMAX-2". Names are case-insensitive and the SIG prefix
// is optional.
func ParseSignal(s string) (syscall.Signal, error) {
	text := strings.TrimSpace(s)
	if allDigits(text) {
		return signalNumber(s, text)
	}
	name := strings.ToUpper(text)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig, ok := realtimeSignal(name); ok {
		return sig, nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%q is not a signal; %s", s, signalHint)
}

func signalNumber(original, digits string) (syscall.Signal, error) {
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > sigRTMax {
		return 0, fmt.Errorf("%q is not a signal number; use 1 to %d, or %s", original, sigRTMax, signalHint)
	}
	return syscall.Signal(n), nil
}

// realtimeSignal parses SIGRTMIN, SIGRTMIN+N, SIGRTMAX and SIGRTMAX-N.
func realtimeSignal(name string) (syscall.Signal, bool) {
	for _, form := range []struct {
		prefix    string
		base, dir int
	}{
		{"SIGRTMIN", sigRTMin, +1},
		{"SIGRTMAX", sigRTMax, -1},
	} {
		rest, ok := strings.CutPrefix(name, form.prefix)
		if !ok {
			continue
		}
		offset, ok := realtimeOffset(rest, form.dir)
		n := form.base + form.dir*offset
		if !ok || n < sigRTMin || n > sigRTMax {
			return 0, false
		}
		return syscall.Signal(n), true
	}
	return 0, false
}

// realtimeOffset parses "" (0) or "+N"/"-N", with the sign that goes with
// the base: SIGRTMIN counts up, SIGRTMAX counts down.
func realtimeOffset(rest string, dir int) (int, bool) {
	if rest == "" {
		return 0, true
	}
	sign := "+"
	if dir < 0 {
		sign = "-"
	}
	digits, ok := strings.CutPrefix(rest, sign)
	if !ok || !allDigits(digits) || len(digits) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}
