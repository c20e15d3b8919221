package config

import (
	"fmt"
	"strings"
)

// KeysMarkdown renders the key registry as a Markdown table for the README's
// "Configuration keys" section, so the docs come from the code.
func KeysMarkdown() string {
	var b strings.Builder
	b.WriteString("| Key | Default | Example | Description |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, key := range Keys() {
		doc := key.Doc
		if key.ReadOnly {
			doc = "Read-only. " + doc
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n",
			key.Name, markdownCode(key.Default()), markdownCode(key.Example), markdownCell(doc))
	}
	return b.String()
}

// markdownCode shows a value as code, or "(empty)" so an empty cell is not
// mistaken for a missing one.
func markdownCode(value string) string {
	if value == "" {
		return "(empty)"
	}
	return "`" + markdownCell(value) + "`"
}

// markdownCell escapes the one character that would break a table row.
func markdownCell(text string) string {
	return strings.ReplaceAll(text, "|", `\|`)
}
