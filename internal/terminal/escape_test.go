package terminal

import (
	"bytes"
	"testing"
)

func TestEscapeFilter(t *testing.T) {
	cases := []struct {
		name   string
		reads  []string
		want   string
		detach bool
	}{
		{"plain text passes", []string{"ls -l\r"}, "ls -l\r", false},
		{"ctrl-a q detaches", []string{"ab\x01q"}, "ab", true},
		{"bytes after detach are dropped", []string{"x\x01qrest"}, "x", true},
		{"sequence split across reads", []string{"a\x01", "q"}, "a", true},
		{"double ctrl-a sends one", []string{"\x01\x01b"}, "\x01b", false},
		{"ctrl-a then other key sends both", []string{"\x01x"}, "\x01x", false},
		{"pending ctrl-a waits for next read", []string{"\x01"}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f EscapeFilter
			var got []byte
			detach := false
			for _, r := range tc.reads {
				out, d := f.Filter([]byte(r))
				got = append(got, out...)
				if d {
					detach = true
					break
				}
			}
			if !bytes.Equal(got, []byte(tc.want)) || detach != tc.detach {
				t.Fatalf("got %q detach=%v, want %q detach=%v", got, detach, tc.want, tc.detach)
			}
		})
	}
}
