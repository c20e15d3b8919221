package config

import (
	"slices"
	"strconv"
	"strings"
)

// The TOML decoder reports no positions for keys, so this file finds a key's
// line by walking the source. It understands table headers ([a.b] and
// [[a.b]]), key = value lines, dotted and quoted keys, and skips comments and
// multi-line strings. That is all a config file needs; anything it cannot
// follow just gives a less precise line, never a wrong error.

// findKeyLine returns the 1-based line that defines key, or else the line
// that defines its longest defined parent (for keys inside inline tables, or
// a table's header); 0 if nothing matches.
func findKeyLine(text string, key []string) int {
	var scanner lineScanner
	bestLine, bestLength := 0, 0
	for i, line := range strings.Split(text, "\n") {
		path, ok := scanner.scan(line)
		if !ok {
			continue
		}
		// A key inside the Nth [[array]] table matches as array.N.key too
		// (network.1.ipv4: the second [[network]]'s ipv4).
		for _, path := range [][]string{path, scanner.indexedPath} {
			if path == nil || len(path) > len(key) || !slices.Equal(path, key[:len(path)]) {
				continue
			}
			if len(path) == len(key) {
				return i + 1
			}
			if len(path) > bestLength {
				bestLine, bestLength = i+1, len(path)
			}
		}
	}
	return bestLine
}

// lineScanner remembers what one line leaves open for the next: the current
// table and an unfinished multi-line string.
type lineScanner struct {
	table           []string
	indexed         []string       // table with the index of an [[array]] entry: network.1
	arrays          map[string]int // entries seen of each [[array]]
	indexedPath     []string       // the last scan's path through indexed, or nil
	openMultiString string         // `"""` or `'''` while inside one
}

// scan returns the full key path a line defines: a table header's path, or
// the current table plus the key of a key = value line.
func (s *lineScanner) scan(line string) ([]string, bool) {
	if s.openMultiString != "" {
		if strings.Contains(line, s.openMultiString) {
			s.openMultiString = ""
		}
		return nil, false
	}
	text := strings.TrimSpace(line)
	if strings.HasPrefix(text, "[") {
		return s.scanHeader(text)
	}
	key, rest, ok := parseDottedKey(text)
	if !ok || !strings.HasPrefix(rest, "=") {
		return nil, false
	}
	s.noteMultiString(strings.TrimSpace(rest[1:]))
	s.indexedPath = nil
	if s.indexed != nil {
		s.indexedPath = append(slices.Clone(s.indexed), key...)
	}
	return append(slices.Clone(s.table), key...), true
}

func (s *lineScanner) scanHeader(text string) ([]string, bool) {
	closing := "]"
	text = strings.TrimPrefix(text, "[")
	if strings.HasPrefix(text, "[") {
		closing, text = "]]", text[1:]
	}
	key, rest, ok := parseDottedKey(text)
	if !ok || !strings.HasPrefix(rest, closing) {
		return nil, false
	}
	s.table, s.indexed, s.indexedPath = key, nil, nil
	if closing == "]]" {
		if s.arrays == nil {
			s.arrays = map[string]int{}
		}
		name := strings.Join(key, "\x00")
		s.indexed = append(slices.Clone(key), strconv.Itoa(s.arrays[name]))
		s.indexedPath = s.indexed
		s.arrays[name]++
	}
	return key, true
}

// noteMultiString notices a value that opens a multi-line string and does
// not close it on the same line.
func (s *lineScanner) noteMultiString(value string) {
	for _, delimiter := range []string{`"""`, `'''`} {
		if strings.HasPrefix(value, delimiter) && !strings.Contains(value[3:], delimiter) {
			s.openMultiString = delimiter
		}
	}
}

// parseDottedKey parses a TOML key such as a.b, "a.b".c or 'x' . y from the
// start of text and returns its elements and the text after it, trimmed.
func parseDottedKey(text string) (key []string, rest string, ok bool) {
	rest = text
	for {
		var element string
		element, rest, ok = parseKeyElement(strings.TrimLeft(rest, " \t"))
		if !ok {
			return nil, "", false
		}
		key = append(key, element)
		rest = strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(rest, ".") {
			return key, rest, true
		}
		rest = rest[1:]
	}
}

// parseKeyElement parses one bare, "basic" or 'literal' key element.
func parseKeyElement(text string) (element, rest string, ok bool) {
	switch {
	case strings.HasPrefix(text, `"`):
		return parseBasicString(text)
	case strings.HasPrefix(text, "'"):
		end := strings.IndexByte(text[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		return text[1 : end+1], text[end+2:], true
	}
	end := strings.IndexFunc(text, func(r rune) bool { return !isBareKeyChar(r) })
	if end < 0 {
		end = len(text)
	}
	return text[:end], text[end:], end > 0
}

// parseBasicString parses a double-quoted key. TOML escapes are close
// enough to Go's for keys that strconv.Unquote reads them.
func parseBasicString(text string) (element, rest string, ok bool) {
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			element, err := strconv.Unquote(text[:i+1])
			return element, text[i+1:], err == nil
		}
	}
	return "", "", false
}

func isBareKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}
