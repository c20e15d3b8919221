package config

import (
	"encoding"
	"reflect"
	"strings"
	"sync"
)

// The structs' toml tags are the schema of the files: these helpers read
// them, so the list of known keys can never drift from the code.

// tomlKeys lists the dotted name of every key a struct type decodes,
// tables included, from its toml tags; maps and types with their own text
// form (Size, time.Time) are leaves. It is the list unknown keys are
// compared with for "did you mean".
func tomlKeys(t reflect.Type) []string {
	var names []string
	for field := range t.Fields() {
		name := tomlName(field)
		if name == "" {
			continue
		}
		names = append(names, name)
		if t := elemTable(field.Type); isTable(t) {
			for _, sub := range tomlKeys(t) {
				names = append(names, name+"."+sub)
			}
		}
	}
	return names
}

// tomlName is the key a struct field decodes, or "" for none.
func tomlName(field reflect.StructField) string {
	name, _, _ := strings.Cut(field.Tag.Get("toml"), ",")
	if !field.IsExported() || name == "-" {
		return ""
	}
	return name
}

// isTable reports whether t decodes from a TOML table field by field.
func isTable(t reflect.Type) bool {
	textType := reflect.TypeFor[encoding.TextUnmarshaler]()
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textType)
}

// hasKey reports whether key names a field of schema exactly, or lies
// inside a map field, where any key is data.
func hasKey(schema reflect.Type, key []string) bool {
	t := schema
	for _, element := range key {
		if t.Kind() == reflect.Map {
			return true
		}
		field, ok := fieldByTag(elemTable(t), element)
		if !ok {
			return false
		}
		t = field.Type
	}
	return true
}

// fieldByTag finds the field of a table type whose toml name is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	field, ok := tableFields(t)[name]
	return field, ok
}

// tableFieldsByType holds tableFields' answers: every key of every config
// file read is looked up (lodge list reads hundreds of files), and walking
// a struct's fields by reflection each time was a fifth of a file's parse.
var tableFieldsByType sync.Map // reflect.Type -> map[string]reflect.StructField

// tableFields maps the toml names of a table type's fields to the fields;
// a type that is not a table has none.
func tableFields(t reflect.Type) map[string]reflect.StructField {
	if fields, ok := tableFieldsByType.Load(t); ok {
		return fields.(map[string]reflect.StructField)
	}
	fields := map[string]reflect.StructField{}
	if isTable(t) {
		for field := range t.Fields() {
			if name := tomlName(field); name != "" {
				fields[name] = field
			}
		}
	}
	tableFieldsByType.Store(t, fields)
	return fields
}

// elemTable is the element type of an array of tables ([[network]]), or t.
func elemTable(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice && isTable(t.Elem()) {
		return t.Elem()
	}
	return t
}
