package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"lodge/internal/seccomp"
)

// Fuzz targets for the monitor's two protocols; run each with e.g.
//
//	go test -fuzz=FuzzDecodeRequest -fuzztime=10s ./manager/monitor
//	go test -fuzz=FuzzDecodeMessage -fuzztime=10s ./manager/monitor

// FuzzDecodeRequest: whatever a client of the monitor socket sends, decoding
// does not panic, a refusal is one of the protocol's, and what it accepts is
// a request the monitor can carry out (a known operation, a signal that
// exists) that encodes back to the same line.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		"LODGE 1 ping", "LODGE 1 stop signal=15 timeout=5000", "LODGE 1 stop force=1",
		"LODGE 1 console rows=24 cols=80", "LODGE 1 resize rows=70000 cols=1", "LODGE 1 stop signal=-9",
		"LODGE 1 nope", "LODGE 1 ping op=1 op=2", "LODGE 2 ping", "", "LODGE 01 ping", "LODGE 1 ping ",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Message == "" || codeErrors[e.Code] == nil {
				t.Fatalf("refusal %#v is not one of the protocol's", err)
			}
			return
		}
		if findOp(req.Op) == nil || req.Signal < 0 || req.Signal > maxSignal {
			t.Fatalf("accepted %+v", req)
		}
		again, err := decodeRequest(bytes.TrimSuffix(req.encode(), []byte("\n")))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}

// FuzzDecodeMessage: whatever arrives on the init sync socket, decoding does
// not panic, and an accepted setup has what the container's first process
// takes as given (a command, a loadable-sized seccomp program).
func FuzzDecodeMessage(f *testing.F) {
	filter, err := seccomp.Build(seccomp.Config{})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(message{Type: "setup", Setup: &initSetup{
		Rootfs: "/r", Hostname: "h", Command: []string{"/sbin/init"}, Seccomp: filter.Bytes(), Views: []string{"/proc/uptime"},
	}})
	f.Add(good)
	for _, seed := range []string{
		`{"type":"console"}`, `{"type":"exec"}`, `{"type":"error","error":"boom"}`, `{"type":"error"}`,
		`{"type":"setup"}`, `{"type":"setup","setup":{"command":[]}}`, `{"type":"setup","setup":{"command":["/sbin/init"],"seccomp":"AAAA"}}`,
		`{"type":"x"}`, `{}`, `null`, `{"type":"setup","setup":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := decodeMessage(data)
		if err != nil {
			return
		}
		switch msg.Type {
		case "console", "exec", "kernfs", "tree":
		case "error":
			if msg.Error == "" {
				t.Fatal("accepted an error without a message")
			}
		case "setup":
			if msg.Setup == nil || len(msg.Setup.Command) == 0 || msg.Setup.Command[0] == "" {
				t.Fatalf("accepted a setup without a command: %+v", msg.Setup)
			}
			prog, err := seccomp.FromBytes(msg.Setup.Seccomp)
			if err != nil || len(prog) == 0 {
				t.Fatalf("accepted a setup without a seccomp program: %v", err)
			}
			if len(msg.Setup.Views)+2 > maxFiles {
				t.Fatalf("accepted %d views", len(msg.Setup.Views))
			}
		default:
			t.Fatalf("accepted type %q", msg.Type)
		}
	})
}
