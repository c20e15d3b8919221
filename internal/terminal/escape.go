package terminal

// The console escape, as in screen and lxc-console: Ctrl-a then q detaches;
// Ctrl-a twice sends one Ctrl-a; Ctrl-a then anything else sends both.
const (
	EscapeKey = 0x01 // Ctrl-a
	DetachKey = 'q'
)

// EscapeFilter scans keystrokes for the detach sequence. It keeps state across
// calls, so a sequence split between two reads is still seen.
type EscapeFilter struct {
	pending bool // the last byte seen was an unconsumed Ctrl-a
}

// Filter returns the bytes to forward to the console and whether the user asked
// to detach (bytes after the detach sequence are dropped).
func (e *EscapeFilter) Filter(in []byte) (out []byte, detach bool) {
	out = make([]byte, 0, len(in)+1)
	for _, b := range in {
		if !e.pending {
			if b == EscapeKey {
				e.pending = true
				continue
			}
			out = append(out, b)
			continue
		}
		e.pending = false
		switch b {
		case DetachKey:
			return out, true
		case EscapeKey:
			out = append(out, EscapeKey)
		default:
			out = append(out, EscapeKey, b)
		}
	}
	return out, false
}
