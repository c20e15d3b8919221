package monitor

import (
	"errors"
	"fmt"
)

// Code says why the monitor refused or failed a request. It travels in the
// response, so a client can branch on the kind of error (errors.Is with the
// sentinels below) rather than on its text.
type Code string

// The codes; cmd/lodge-helper/protocol.h carries the ones the watcher sends.
const (
	CodeBadRequest Code = "bad-request" // not a request of this grammar, or bad arguments
	CodeVersion    Code = "version"     // a protocol version this monitor does not speak
	CodeUnknownOp  Code = "unknown-op"  // a well-formed request for an operation that does not exist
	CodeNotRunning Code = "not-running" // the container is not running (any more)
	CodeBusy       Code = "busy"        // the monitor cannot take the request now; try again
	CodeInternal   Code = "internal"    // the monitor failed; its log says why
)

// Sentinel errors for the codes: a client's error from Call or Do wraps the
// one of the response's code.
var (
	ErrBadRequest = errors.New("the monitor refused a malformed request")
	ErrVersion    = errors.New("the monitor speaks another protocol version (lodge was upgraded or downgraded while the container ran; restart it)")
	ErrUnknownOp  = errors.New("the monitor does not know the operation")
	ErrNotRunning = errors.New("is not running")
	ErrBusy       = errors.New("the monitor is busy")
	ErrInternal   = errors.New("the monitor failed")
)

var codeErrors = map[Code]error{
	CodeBadRequest: ErrBadRequest,
	CodeVersion:    ErrVersion,
	CodeUnknownOp:  ErrUnknownOp,
	CodeNotRunning: ErrNotRunning,
	CodeBusy:       ErrBusy,
	CodeInternal:   ErrInternal,
}

// Error is a refusal or failure the monitor answered.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel of the code (nil for a code this client does
// not know, from a newer monitor).
func (e *Error) Unwrap() error { return codeErrors[e.Code] }

// failure builds an error response.
func failure(code Code, format string, args ...any) Response {
	return Response{Code: code, Error: fmt.Sprintf(format, args...)}
}

// err is the client's error for a response that is not OK. One without a
// code comes from a monitor older than protocol versions (see legacy.go).
func (r Response) err() error {
	if r.Code == "" {
		return &Error{Code: CodeVersion, Message: "the container's monitor was started by an older lodge " +
			"and does not understand this request (restart the container to update it): " + r.Error}
	}
	return &Error{Code: r.Code, Message: r.Error}
}
