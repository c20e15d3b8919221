package config

import (
	"slices"
	"strings"
	"testing"
)

func TestFindKeyLine(t *testing.T) {
	text := strings.Join([]string{
		`# comment: memory = 1`,      // 1
		`version = 1`,                // 2
		`[limits]`,                   // 3
		`memory = "1G" # note`,       // 4
		`  cpu=1`,                    // 5
		`[init]`,                     // 6
		`command = [`,                // 7
		`  "a = b",`,                 // 8
		`]`,                          // 9
		`stop_signal = """`,          // 10
		`pids = 5`,                   // 11: inside a multi-line string
		`"""`,                        // 12
		`[[servers]]`,                // 13
		`name = "x"`,                 // 14
		`[defaults]`,                 // 15
		`"limits.pids" = "1"`,        // 16
		`'limits.cpu' = "1"`,         // 17
		`a . "b.c" . d = 1`,          // 18
		`inline = { x = 1 }`,         // 19
		`[ "quoted table" . inner ]`, // 20
		`key = 2`,                    // 21
	}, "\n")
	tests := []struct {
		key  []string
		want int
	}{
		{[]string{"version"}, 2},
		{[]string{"limits"}, 3},
		{[]string{"limits", "memory"}, 4},
		{[]string{"limits", "cpu"}, 5},
		{[]string{"limits", "nothere"}, 3}, // falls back to the table
		{[]string{"init", "command"}, 7},
		{[]string{"init", "a = b"}, 6}, // not a key: it is inside an array
		{[]string{"init", "stop_signal"}, 10},
		{[]string{"init", "pids"}, 6}, // not a key: it is inside a string
		{[]string{"servers", "name"}, 14},
		{[]string{"defaults", "limits.pids"}, 16},
		{[]string{"defaults", "limits.cpu"}, 17},
		{[]string{"defaults", "a", "b.c", "d"}, 18},
		{[]string{"defaults", "inline", "x"}, 19},
		{[]string{"quoted table", "inner", "key"}, 21},
		{[]string{"nowhere"}, 0},
	}
	for _, tt := range tests {
		if got := findKeyLine(text, tt.key); got != tt.want {
			t.Errorf("findKeyLine(%q) = %d; want %d", tt.key, got, tt.want)
		}
	}
}

func TestParseDottedKey(t *testing.T) {
	tests := []struct {
		in       string
		want     []string
		wantRest string
		ok       bool
	}{
		{"a", []string{"a"}, "", true},
		{"a.b = 1", []string{"a", "b"}, "= 1", true},
		{`defaults."limits.pids"`, []string{"defaults", "limits.pids"}, "", true},
		{`"a\"b".c`, []string{`a"b`, "c"}, "", true},
		{`'lit\'`, []string{`lit\`}, "", true},
		{"= 1", nil, "", false},
		{`"open`, nil, "", false},
		{"a.", nil, "", false},
	}
	for _, tt := range tests {
		got, rest, ok := parseDottedKey(tt.in)
		if ok != tt.ok || !slices.Equal(got, tt.want) || rest != tt.wantRest {
			t.Errorf("parseDottedKey(%q) = %q, %q, %v; want %q, %q, %v", tt.in, got, rest, ok, tt.want, tt.wantRest, tt.ok)
		}
	}
}
