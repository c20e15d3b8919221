package config

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/BurntSushi/toml"
)

// A migration upgrades a raw decoded document from version N (its key in
// the table) to N+1, before the document is decoded into structs. Both
// tables are empty because version 1 is the first; a test fails if a
// current version is bumped without the step from the previous one.
var (
	migrations     = map[int]func(map[string]any) error{} // containers/NAME/config.toml
	hostMigrations = map[int]func(map[string]any) error{} // lodge.toml
)

// upgrade checks the file's version and runs the migrations up to current.
// The returned file is f itself when no migration was needed.
func (f sourceFile) upgrade(current int, steps map[int]func(map[string]any) error) (sourceFile, error) {
	var document map[string]any
	if _, err := toml.Decode(f.text, &document); err != nil {
		return f, f.syntaxError(err)
	}
	version, err := f.version(document, current)
	if err != nil || version == current {
		return f, err
	}
	for from := version; from < current; from++ {
		step, ok := steps[from]
		if !ok {
			return f, fmt.Errorf("%s: no upgrade from version %d to %d (a bug in lodge)", f.path, from, from+1)
		}
		if err := step(document); err != nil {
			return f, fmt.Errorf("%s: upgrade from version %d to %d: %w", f.path, from, from+1, err)
		}
	}
	document["version"] = int64(current)
	return f.reencode(document, version)
}

// reencode turns a migrated document back into TOML text for the decoder.
func (f sourceFile) reencode(document map[string]any, from int) (sourceFile, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(document); err != nil {
		return f, fmt.Errorf("%s: encode after upgrading from version %d: %w", f.path, from, err)
	}
	return sourceFile{path: f.path, text: buf.String(), upgradedFrom: from}, nil
}

// version reads and checks the version key of a raw document.
func (f sourceFile) version(document map[string]any, current int) (int, error) {
	at := []string{"version"}
	raw, ok := document["version"]
	if !ok {
		return 0, fmt.Errorf("%s: no version key; add version = %d at the top of the file", f.path, current)
	}
	number, ok := raw.(int64)
	switch {
	case !ok:
		return 0, f.errorAt(at, fmt.Errorf("version: %s is not a whole number; write version = %d", tomlValueText(raw), current))
	case number > int64(current):
		return 0, f.errorAt(at, fmt.Errorf("written by a newer lodge (version %d, this lodge understands up to %d)", number, current))
	case number < 1:
		return 0, f.errorAt(at, fmt.Errorf("version: %d is not a valid version; write version = %d", number, current))
	}
	return int(number), nil
}

func tomlValueText(value any) string {
	if s, ok := value.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(value)
}
