package config

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"/sbin/init", []string{"/sbin/init"}},
		{"  /sbin/init   --log  info ", []string{"/sbin/init", "--log", "info"}},
		{"a\tb", []string{"a", "b"}},
		{`/bin/sh -c "exec init"`, []string{"/bin/sh", "-c", "exec init"}},
		{`/bin/sh -c 'echo "hi"'`, []string{"/bin/sh", "-c", `echo "hi"`}},
		{`a "b \"c\" \\ d"`, []string{"a", `b "c" \ d`}},
		{`'it''s'`, []string{"its"}},
		{`a\ b`, []string{"a b"}},
		{`x '' y`, []string{"x", "", "y"}},
		{`pre"mid"post`, []string{"premidpost"}},
		{`'$HOME'`, []string{"$HOME"}},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitWordsErrors(t *testing.T) {
	for in, wantErr := range map[string]string{
		`"open`:   `unterminated " quote`,
		`'open`:   `unterminated ' quote`,
		`trail\`:  "backslash at the end",
		`"a\`:     `unterminated " quote`,
		`ok 'x`:   `unterminated ' quote`,
		`x "y" "`: `unterminated " quote`,
	} {
		_, err := splitWords(in)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("splitWords(%q) error = %v; want %q", in, err, wantErr)
		}
	}
}

func TestJoinWordsRoundTrip(t *testing.T) {
	for _, words := range [][]string{
		{"/sbin/init"},
		{"/bin/sh", "-c", "exec init"},
		{"a", "", "b"},
		{`it's`, `say "hi"`, `back\slash`},
		{"tab\there", "new\nline"},
	} {
		joined := joinWords(words)
		back, err := splitWords(joined)
		if err != nil || !slices.Equal(back, words) {
			t.Errorf("splitWords(joinWords(%q) = %q) = %q, %v", words, joined, back, err)
		}
	}
	if got := joinWords([]string{"/bin/sh", "-c", "exec init"}); got != `/bin/sh -c 'exec init'` {
		t.Errorf("joinWords = %q; want /bin/sh -c 'exec init'", got)
	}
}

// FuzzJoinWords checks that any words survive joinWords then splitWords.
func FuzzJoinWords(f *testing.F) {
	f.Add("/bin/sh", `it's "x"`)
	f.Add("", `\`)
	f.Fuzz(func(t *testing.T, first, second string) {
		words := []string{first, second}
		back, err := splitWords(joinWords(words))
		if err != nil || !slices.Equal(back, words) {
			t.Fatalf("splitWords(joinWords(%q) = %q) = %q, %v", words, joinWords(words), back, err)
		}
	})
}
