package config

import (
	"errors"
	"strings"
)

// splitWords splits a command line the way a shell would for simple cases:
// words are separated by spaces, tabs or newlines; 'single quotes' keep
// everything literally; "double quotes" keep spaces; outside single quotes
// a backslash keeps the next character as it is (\", \\, an escaped space). There
// is no expansion of any kind.
func splitWords(s string) ([]string, error) {
	// Work on bytes: every special character is ASCII, and bytes keep
	// arguments that are not valid UTF-8 intact.
	var splitter wordSplitter
	for i := 0; i < len(s); i++ {
		splitter.add(s[i])
	}
	return splitter.finish()
}

// wordSplitter is the state machine behind splitWords.
type wordSplitter struct {
	words   []string
	current strings.Builder
	inWord  bool // a word has started, maybe as "" which is still a word
	quote   byte // the open quote character, or 0
	escaped bool // the previous character was a backslash
}

func (w *wordSplitter) add(b byte) {
	switch {
	case w.escaped:
		w.escaped = false
		w.current.WriteByte(b)
	case w.quote == '\'':
		w.addSingleQuoted(b)
	case w.quote == '"':
		w.addDoubleQuoted(b)
	case b == ' ' || b == '\t' || b == '\n':
		w.endWord()
	default:
		w.addUnquoted(b)
	}
}

func (w *wordSplitter) addSingleQuoted(b byte) {
	if b == '\'' {
		w.quote = 0
		return
	}
	w.current.WriteByte(b)
}

func (w *wordSplitter) addDoubleQuoted(b byte) {
	switch b {
	case '"':
		w.quote = 0
	case '\\':
		w.escaped = true
	default:
		w.current.WriteByte(b)
	}
}

func (w *wordSplitter) addUnquoted(b byte) {
	w.inWord = true
	switch b {
	case '\'', '"':
		w.quote = b
	case '\\':
		w.escaped = true
	default:
		w.current.WriteByte(b)
	}
}

func (w *wordSplitter) endWord() {
	if w.inWord {
		w.words = append(w.words, w.current.String())
	}
	w.current.Reset()
	w.inWord = false
}

func (w *wordSplitter) finish() ([]string, error) {
	switch {
	case w.quote != 0:
		return nil, errors.New("unterminated " + string(rune(w.quote)) + " quote")
	case w.escaped:
		return nil, errors.New("backslash at the end")
	}
	w.endWord()
	return w.words, nil
}

// joinWords is the inverse of splitWords: words that need it are quoted, so
// splitWords(joinWords(words)) gives words back.
func joinWords(words []string) string {
	quoted := make([]string, len(words))
	for i, word := range words {
		quoted[i] = quoteWord(word)
	}
	return strings.Join(quoted, " ")
}

func quoteWord(word string) string {
	if word != "" && !strings.ContainsAny(word, " \t\n'\"\\") {
		return word
	}
	if !strings.Contains(word, "'") {
		return "'" + word + "'"
	}
	escaper := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + escaper.Replace(word) + `"`
}
