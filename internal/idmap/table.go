package idmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	"lodge/internal/atomicfile"
)

// tableVersion is the format version of the allocation file.
const tableVersion = 1

// table is the allocation file:
//
//	{"version": 1, "allocations": {"web1": {"host_id": 524288, "size": 65536}}}
type table struct {
	Version     int              `json:"version"`
	Allocations map[string]Range `json:"allocations"`
}

// ranges returns the recorded ranges, in no particular order.
func (t *table) ranges() []Range {
	out := make([]Range, 0, len(t.Allocations))
	for _, r := range t.Allocations {
		out = append(out, r)
	}
	return out
}

// read loads the table; a missing file is an empty table. A damaged file is
// an error naming it: resetting it would hand out ranges still in use.
func (a *Allocator) read() (*table, error) {
	data, err := os.ReadFile(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &table{Version: tableVersion, Allocations: map[string]Range{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read id range allocations: %w", err)
	}
	t, err := decodeTable(data)
	if err != nil {
		return nil, fmt.Errorf("id range allocation file %s is damaged: %w; restore it from a backup "+
			"or repair it by hand (lodge does not reset it: that would hand out ranges still in use)", a.path, err)
	}
	return t, nil
}

// decodeTable parses and checks the allocation file.
func decodeTable(data []byte) (*table, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t table
	if err := dec.Decode(&t); err != nil {
		return nil, describeJSONError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	if t.Version != tableVersion {
		return nil, fmt.Errorf("unsupported version %d (this lodge reads version %d)", t.Version, tableVersion)
	}
	if t.Allocations == nil {
		t.Allocations = map[string]Range{}
	}
	return &t, checkTable(&t)
}

// checkTable rejects empty names, empty ranges and overlaps.
func checkTable(t *table) error {
	names := make([]string, 0, len(t.Allocations))
	for name, r := range t.Allocations {
		if name == "" {
			return errors.New("an allocation has an empty name")
		}
		if r.Size == 0 || r.end() > 1<<32-1 {
			return fmt.Errorf("allocation of %q has an invalid range (host_id %d, size %d)", name, r.HostID, r.Size)
		}
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		return t.Allocations[names[i]].HostID < t.Allocations[names[j]].HostID
	})
	for i := 1; i < len(names); i++ {
		prev, cur := t.Allocations[names[i-1]], t.Allocations[names[i]]
		if prev.Overlaps(cur) {
			return fmt.Errorf("ranges of %q (%s) and %q (%s) overlap", names[i-1], prev, names[i], cur)
		}
	}
	return nil
}

// describeJSONError adds the line and column to a syntax or type error.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err
	}
	line, col := 1, 1
	for _, b := range data[:min(off, int64(len(data)))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// write saves the table atomically.
func (a *Allocator) write(t *table) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(a.path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save id range allocations: %w", err)
	}
	return nil
}
