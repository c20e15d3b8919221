package api

import (
	"errors"
	"fmt"
	"testing"

	"lodge/manager"
)

func TestErrorKindsCrossTheWire(t *testing.T) {
	for _, k := range Kinds {
		err := fmt.Errorf("container %q: %w", "c1", k.Err)
		wire := ErrorOf(err)
		if wire.Kind != k.Name || wire.Message != err.Error() {
			t.Fatalf("ErrorOf(%v) = %+v", err, wire)
		}
		back := wire.Err()
		if !errors.Is(back, k.Err) || back.Error() != err.Error() {
			t.Errorf("%s: back as %v, not matching its sentinel", k.Name, back)
		}
	}
	if e := ErrorOf(errors.New("boom")); e.Kind != "" || errors.Is(e.Err(), manager.ErrInvalid) {
		t.Errorf("a plain error got a kind: %+v", e)
	}
	if err := (&Error{Kind: "from-the-future", Message: "m"}).Err(); err.Error() != "m" {
		t.Errorf("unknown kind: %v", err)
	}
	if !errors.Is(Mark(errors.New("x"), ErrTokenUsed), ErrTokenUsed) {
		t.Error("Mark lost the kind")
	}
}

func TestNamesAndAddresses(t *testing.T) {
	for _, good := range []string{"h2", "host-1", "A"} {
		if err := CheckName("remote", good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	for _, bad := range []string{"", "2h", "h-", "h:2", "a/b", "h 2"} {
		if err := CheckName("remote", bad); !errors.Is(err, manager.ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]string{"10.0.0.2": "10.0.0.2:8443", "h2:9000": "h2:9000", "fd00::2": "[fd00::2]:8443", "[fd00::2]": "[fd00::2]:8443"} {
		if got := HostPort(in); got != want {
			t.Errorf("HostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequest(t *testing.T) {
	if m, p := Request(RouteStop, "c1"); m != "POST" || p != "/1.0/containers/c1/stop" {
		t.Errorf("Request(RouteStop) = %s %s", m, p)
	}
	if m, p := Request(RouteList, ""); m != "GET" || p != "/1.0/containers" {
		t.Errorf("Request(RouteList) = %s %s", m, p)
	}
}
