package monitor

import (
	"encoding/json"
	"reflect"
	"testing"

	"lodge/internal/seccomp"
)

// Fuzz targets for the monitor's two protocols; run each with e.g.
//
//	go test -fuzz=FuzzDecodeRequest -fuzztime=10s ./manager/monitor
//	go test -fuzz=FuzzDecodeMessage -fuzztime=10s ./manager/monitor

// FuzzDecodeRequest: whatever a client of the monitor socket sends, decoding
// does not panic, and what it accepts is a request the monitor can carry out
// (a known operation, a signal that exists) and that survives a round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"op":"ping"}`, `{"op":"stop","signal":15,"timeout":5000000000}`, `{"op":"stop","force":true}`,
		`{"op":"console","rows":24,"cols":80}`, `{"op":"resize","rows":70000}`, `{"op":"stop","signal":-9}`,
		`{"op":"stop","signal":1e3}`, `{"op":"nope"}`, `{"op":"ping","op":"stop"}`, `[]`, `null`, ``, `{"op":"stop"}` + "\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		switch req.Op {
		case "ping", "console", "resize":
		case "stop":
			if req.Signal < 0 || req.Signal > maxSignal {
				t.Fatalf("accepted signal %d", req.Signal)
			}
		default:
			t.Fatalf("accepted op %q", req.Op)
		}
		data, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRequest(data)
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
