package api

import (
	"errors"

	"lodge/manager"
)

// Errors of the host API itself, beside the manager's.
var (
	// ErrNotTrusted: the client's certificate is not in the host's trust store.
	ErrNotTrusted = errors.New("not trusted")
	// ErrTokenUnknown, ErrTokenUsed, ErrTokenExpired: a token that cannot be redeemed.
	ErrTokenUnknown = errors.New("unknown token")
	ErrTokenUsed    = errors.New("token already used")
	ErrTokenExpired = errors.New("token expired")
	// ErrProtocol: an answer that is not the API's (another program, another version).
	ErrProtocol = errors.New("not a lodge API answer")
)

// Kinds names each error a caller branches on, as it crosses the wire. The
// first that matches (errors.Is) names an error; the client gives back an
// error that matches the same one, so the CLI keeps its exit statuses.
var Kinds = []struct {
	Name string
	Err  error
}{
	{"not-found", manager.ErrNotFound},
	{"exists", manager.ErrExists},
	{"running", manager.ErrRunning},
	{"not-running", manager.ErrNotRunning},
	{"in-use", manager.ErrInUse},
	{"frozen", manager.ErrFrozen},
	{"blocked", manager.ErrBlocked},
	{"invalid", manager.ErrInvalid},
	{"not-root", manager.ErrNotRoot},
	{"monitor-busy", manager.ErrMonitorBusy},
	{"monitor-version", manager.ErrMonitorVersion},
	{"monitor-internal", manager.ErrMonitorInternal},
	{"incompatible", manager.ErrIncompatible},
	{"not-trusted", ErrNotTrusted},
	{"token-unknown", ErrTokenUnknown},
	{"token-used", ErrTokenUsed},
	{"token-expired", ErrTokenExpired},
}

// ErrorOf is the wire form of err.
func ErrorOf(err error) *Error {
	for _, k := range Kinds {
		if errors.Is(err, k.Err) {
			return &Error{Kind: k.Name, Message: err.Error()}
		}
	}
	return &Error{Message: err.Error()}
}

// Err gives back an error from its wire form: its message as is, matching
// its kind's sentinel with errors.Is (an unknown kind, from a newer host,
// matches none).
func (e *Error) Err() error {
	for _, k := range Kinds {
		if k.Name == e.Kind {
			return kindError{e.Message, k.Err, nil}
		}
	}
	return errors.New(e.Message)
}

// kindError is an error of a known kind with its own message (and the
// error it was made from, on this side of the wire).
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e kindError) Error() string        { return e.msg }
func (e kindError) Is(target error) bool { return target == e.kind }
func (e kindError) Unwrap() error        { return e.cause }

// Mark gives err the kind of sentinel, keeping its message.
func Mark(err, sentinel error) error { return kindError{err.Error(), sentinel, err} }

func invalid(err error) error { return Mark(err, manager.ErrInvalid) }
