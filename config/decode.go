package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sync"

	"github.com/BurntSushi/toml"
)

// sourceFile is a config file's path and text, kept together so that every
// error can name the file and the line it is about.
type sourceFile struct {
	path string
	text string
	// upgradedFrom is the version the file had on disk when text is the
	// migrated document; lines in text then do not match the user's file.
	upgradedFrom int
}

// errorAt prefixes err with the file and the line that defines key.
func (f sourceFile) errorAt(key []string, err error) error {
	if f.upgradedFrom != 0 {
		return fmt.Errorf("%s: after upgrading from version %d: %w", f.path, f.upgradedFrom, err)
	}
	if line := findKeyLine(f.text, key); line > 0 {
		return fmt.Errorf("%s:%d: %w", f.path, line, err)
	}
	return fmt.Errorf("%s: %w", f.path, err)
}

// locate adds file and line to each error of a Validate result and orders
// them as they appear in the file.
func (f sourceFile) locate(err error) error {
	type located struct {
		line int
		err  error
	}
	var all []located
	for _, err := range unjoin(err) {
		var problem *keyError
		if !errors.As(err, &problem) {
			all = append(all, located{0, fmt.Errorf("%s: %w", f.path, err)})
			continue
		}
		key, _, _ := parseDottedKey(problem.Key)
		all = append(all, located{findKeyLine(f.text, key), f.errorAt(key, err)})
	}
	slices.SortStableFunc(all, func(a, b located) int { return cmp.Compare(a.line, b.line) })
	errs := make([]error, len(all))
	for i, l := range all {
		errs[i] = l.err
	}
	return errors.Join(errs...)
}

// unjoin returns the errors joined in err by errors.Join, flattening
// joins of joins, or err alone.
func unjoin(err error) []error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var all []error
	for _, err := range joined.Unwrap() {
		all = append(all, unjoin(err)...)
	}
	return all
}

// decodeStrict decodes the file into v, a pointer to a struct, and turns
// every key the struct has no field for into an error that suggests the
// nearest known key.
func (f sourceFile) decodeStrict(v any) (toml.MetaData, error) {
	meta, err := toml.Decode(f.text, v)
	if err != nil {
		return meta, f.decodeError(err)
	}
	schema := reflect.TypeOf(v).Elem()
	stray := strayKeys(meta, schema)
	if len(stray) == 0 {
		return meta, nil // the usual case: no need for the list of known keys
	}
	return meta, f.unknownKeys(stray, tomlKeys(schema))
}

// strayKeys returns, in document order, the keys schema has no field for:
// those the decoder left undecoded, and those it matched only by ignoring
// case (the decoder is lenient there; TOML and lodge are not).
func strayKeys(meta toml.MetaData, schema reflect.Type) []toml.Key {
	undecoded := map[string]bool{}
	for _, key := range meta.Undecoded() {
		undecoded[key.String()] = true
	}
	var stray []toml.Key
	for _, key := range meta.Keys() {
		if undecoded[key.String()] || !hasKey(schema, key) {
			stray = append(stray, key)
		}
	}
	return stray
}

// maxUnknownKeys caps the unknown keys reported: past a few, the file is
// probably not a lodge config at all, and finding each line costs a pass
// over the file.
const maxUnknownKeys = 10

func (f sourceFile) unknownKeys(stray []toml.Key, known []string) error {
	var errs []error
	for i, key := range stray {
		if i > 0 && isUnder(key, stray[:i]) {
			continue // an unknown table was reported; its keys are noise
		}
		if len(errs) == maxUnknownKeys {
			errs = append(errs, fmt.Errorf("%s: more unknown keys not shown", f.path))
			break
		}
		name := key.String()
		errs = append(errs, f.errorAt(key, fmt.Errorf("unknown key %q%s", name, didYouMean(name, known))))
	}
	return errors.Join(errs...)
}

// isUnder reports whether key lies inside one of the tables.
func isUnder(key toml.Key, tables []toml.Key) bool {
	for _, table := range tables {
		if len(table) < len(key) && table.String() == key[:len(table)].String() {
			return true
		}
	}
	return false
}

// tomlErrorPrefix matches the line and key the TOML decoder puts in its
// plain errors (wrong types), so they read like ours: "path:7: key: msg".
var tomlErrorPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^toml: line (\d+) \(last key "(.*?)"\): (.*)$`) })

// decodeError rewrites a decoder error as "path:line: key: message". Syntax
// errors are caught earlier by upgrade, so here the key is the culprit.
func (f sourceFile) decodeError(err error) error {
	if f.upgradedFrom != 0 {
		return fmt.Errorf("%s: after upgrading from version %d: %w", f.path, f.upgradedFrom, err)
	}
	var parseErr toml.ParseError
	if errors.As(err, &parseErr) && parseErr.LastKey != "" {
		return fmt.Errorf("%s:%d: %s: %s", f.path, parseErr.Position.Line, parseErr.LastKey, parseErr.Message)
	}
	if m := tomlErrorPrefix().FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s: %s", f.path, m[1], m[2], m[3])
	}
	return fmt.Errorf("%s: %w", f.path, err)
}

// syntaxError rewrites a TOML syntax error as "path:line: message".
func (f sourceFile) syntaxError(err error) error {
	var parseErr toml.ParseError
	if errors.As(err, &parseErr) {
		return fmt.Errorf("%s:%d: %s", f.path, parseErr.Position.Line, parseErr.Message)
	}
	return fmt.Errorf("%s: %w", f.path, err)
}
