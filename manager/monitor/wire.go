package monitor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A request is one line of printable ASCII tokens separated by single spaces:
//
//	LODGE VERSION OP [KEY=VALUE]...\n
//
// VERSION and every VALUE are decimal numbers (no sign, no leading zero,
// at most 4294967295); OP and KEY are 1 to 16 lowercase letters; a KEY
// appears at most once. The line is at most maxRequest bytes, newline
// included. Nothing else is a request: the grammar leaves no room for two
// parsers to read one line differently, so the watcher (C) and the server
// (Go) check it with the same steps, in the same order, with the same
// answers (see requestParser and cmd/lodge-helper/request.c):
//
//  1. only bytes 0x20-0x7e, no empty token  -> bad-request (malformed)
//  2. "LODGE", then a number                -> bad-request (malformed)
//  3. the number is ProtocolVersion          -> version
//  4. an operation, then KEY=VALUE tokens    -> bad-request (malformed)
//  5. a known operation                      -> unknown-op (the watcher hands
//     every operation it does not answer itself to Go)
//  6. the operation's arguments              -> bad-request (bad arguments)

const requestMagic = "LODGE"

const maxToken = 16

// argSpec is one argument of an operation: its key and allowed range.
type argSpec struct {
	key      string
	min, max uint64
}

// argMode says which of an operation's arguments must be present.
type argMode int

const (
	argsOptional argMode = iota // any of them
	argsTogether                // all or none
	argsRequired                // all
)

// opSpec is an operation and its arguments. watcher marks the operations
// lodge-helper's watcher answers itself; it hands every other to Go.
type opSpec struct {
	name    string
	mode    argMode
	args    []argSpec
	watcher bool
}

var sizeArgs = []argSpec{{"rows", 1, math.MaxUint16}, {"cols", 1, math.MaxUint16}}

// opSpecs is the one definition of the operations and their arguments.
var opSpecs = []opSpec{
	{name: OpPing, watcher: true},
	{name: OpConsole, mode: argsTogether, args: sizeArgs, watcher: true},
	{name: OpResize, mode: argsRequired, args: sizeArgs, watcher: true},
	{name: OpSignal, mode: argsRequired, args: []argSpec{{"signal", 1, maxSignal}}, watcher: true},
	{name: OpStop, args: []argSpec{{"signal", 0, maxSignal}, {"timeout", 0, math.MaxUint32}, {"force", 0, 1}}},
}

func findOp(name string) *opSpec {
	for i := range opSpecs {
		if opSpecs[i].name == name {
			return &opSpecs[i]
		}
	}
	return nil
}

// The fixed refusals, word for word the watcher's (protocol.h).
var (
	replyTooLong    = failure(CodeBadRequest, "bad request: the request line is longer than %d bytes", maxRequest)
	replyIncomplete = failure(CodeBadRequest, "bad request: no whole request line (ending in a newline) within %v", requestTimeout)
	replyMalformed  = failure(CodeBadRequest, "bad request: not a line of the form %s VERSION OP [KEY=VALUE]...", requestMagic)
	replyVersion    = failure(CodeVersion, "unsupported protocol version: this monitor speaks version %d", ProtocolVersion)
	replyBusy       = failure(CodeBusy, "the monitor is busy: too many connections at once; try again")
	replyNotRunning = failure(CodeNotRunning, "the container is not running")
	replyHandOver   = failure(CodeInternal, "the idle monitor could not hand the request over to lodge; see monitor.log")
	replyNoSignal   = failure(CodeInternal, "the console could not be signalled: only SIGINT, SIGQUIT and SIGTSTP go to its foreground process group, as from a keyboard")
)

func replyBadArgs(op *opSpec) Response {
	return failure(CodeBadRequest, "bad request: the arguments of %s must be: %s", op.name, op.usage())
}

// usage describes an operation's arguments, e.g. "rows=1..65535 cols=1..65535".
func (op *opSpec) usage() string {
	if len(op.args) == 0 {
		return "none"
	}
	parts := make([]string, len(op.args))
	for i, a := range op.args {
		parts[i] = fmt.Sprintf("%s=%d..%d", a.key, a.min, a.max)
	}
	text := strings.Join(parts, " ")
	switch op.mode {
	case argsTogether:
		return "all or none of " + text
	case argsRequired:
		return "all of " + text
	}
	return "any of " + text
}

// encode renders a request line.
func (r Request) encode() []byte {
	line := fmt.Sprintf("%s %d %s", requestMagic, ProtocolVersion, r.Op)
	switch r.Op {
	case OpConsole:
		if r.Rows > 0 && r.Cols > 0 {
			line += fmt.Sprintf(" rows=%d cols=%d", r.Rows, r.Cols)
		}
	case OpResize:
		line += fmt.Sprintf(" rows=%d cols=%d", r.Rows, r.Cols)
	case OpSignal:
		line += fmt.Sprintf(" signal=%d", r.Signal)
	case OpStop:
		if r.Signal != 0 {
			line += fmt.Sprintf(" signal=%d", r.Signal)
		}
		if r.Timeout > 0 {
			ms := (r.Timeout + time.Millisecond - 1) / time.Millisecond
			line += fmt.Sprintf(" timeout=%d", min(ms, math.MaxUint32))
		}
		if r.Force {
			line += " force=1"
		}
	}
	return []byte(line + "\n")
}

// decodeRequest parses and checks one request line (without its newline).
// The error is an *Error with the answer for the client.
func decodeRequest(line []byte) (Request, error) {
	op, args, refusal := parseLine(string(line))
	if refusal != nil {
		return Request{}, refusal.err()
	}
	spec := findOp(op)
	if spec == nil {
		return Request{}, failure(CodeUnknownOp, "unknown operation %q", op).err()
	}
	values, ok := spec.check(args)
	if !ok {
		return Request{}, replyBadArgs(spec).err()
	}
	return Request{
		Op: op, Signal: int(values["signal"]), Timeout: time.Duration(values["timeout"]) * time.Millisecond,
		Force: values["force"] == 1, Rows: uint16(values["rows"]), Cols: uint16(values["cols"]),
	}, nil
}

// arg is one KEY=VALUE of a request line.
type arg struct {
	key   string
	value uint64
}

// parseLine checks steps 1 to 4 of the grammar and returns the operation and
// its arguments, or the refusal.
func parseLine(line string) (string, []arg, *Response) {
	for i := 0; i < len(line); i++ {
		if line[i] < 0x20 || line[i] > 0x7e {
			return "", nil, &replyMalformed
		}
	}
	tokens := strings.Split(line, " ")
	for _, t := range tokens {
		if t == "" {
			return "", nil, &replyMalformed
		}
	}
	if len(tokens) < 2 || tokens[0] != requestMagic {
		return "", nil, &replyMalformed
	}
	version, ok := parseNumber(tokens[1])
	if !ok {
		return "", nil, &replyMalformed
	}
	if version != ProtocolVersion {
		return "", nil, &replyVersion
	}
	if len(tokens) < 3 || !isWord(tokens[2]) {
		return "", nil, &replyMalformed
	}
	args, ok := parseArgs(tokens[3:])
	if !ok {
		return "", nil, &replyMalformed
	}
	return tokens[2], args, nil
}

func parseArgs(tokens []string) ([]arg, bool) {
	args := make([]arg, 0, len(tokens))
	for _, t := range tokens {
		key, text, found := strings.Cut(t, "=")
		value, ok := parseNumber(text)
		if !found || !ok || !isWord(key) {
			return nil, false
		}
		for _, a := range args {
			if a.key == key {
				return nil, false
			}
		}
		args = append(args, arg{key, value})
	}
	return args, true
}

// isWord: 1 to maxToken lowercase letters.
func isWord(s string) bool {
	if len(s) == 0 || len(s) > maxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// parseNumber: decimal digits, no leading zero, at most MaxUint32.
func parseNumber(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v <= math.MaxUint32
}

// check validates args against the operation (step 6) and returns them by key.
func (op *opSpec) check(args []arg) (map[string]uint64, bool) {
	values := make(map[string]uint64, len(args))
	for _, a := range args {
		spec := op.arg(a.key)
		if spec == nil || a.value < spec.min || a.value > spec.max {
			return nil, false
		}
		values[a.key] = a.value
	}
	switch op.mode {
	case argsTogether:
		return values, len(values) == 0 || len(values) == len(op.args)
	case argsRequired:
		return values, len(values) == len(op.args)
	}
	return values, true
}

func (op *opSpec) arg(key string) *argSpec {
	for i := range op.args {
		if op.args[i].key == key {
			return &op.args[i]
		}
	}
	return nil
}
