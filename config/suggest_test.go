package config

import "testing"

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"a", "", 1},
		{"", "abc", 3},
		{"memory", "memory", 0},
		{"memroy", "memory", 2},
		{"limitz", "limits", 1},
		{"kitten", "sitting", 3},
		{"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	known := []string{"limits", "limits.memory", "limits.swap", "init.command", "defaults.memory"}
	tests := []struct {
		name, want string
	}{
		{"limits.memroy", ` (did you mean "limits.memory"?)`},
		{"limitz", ` (did you mean "limits"?)`},
		{"init.comand", ` (did you mean "init.command"?)`},
		{"swap", ` (did you mean "limits.swap"?)`},
		{"command", ` (did you mean "init.command"?)`},
		{"memory", ""}, // two keys end in memory: no guess
		{"something.else", ""},
	}
	for _, tt := range tests {
		if got := didYouMean(tt.name, known); got != tt.want {
			t.Errorf("didYouMean(%q) = %q; want %q", tt.name, got, tt.want)
		}
	}
}
