package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMonitorArgs(t *testing.T) {
	for _, tc := range []struct {
		args, types []string
		format      string
		remote      string
		names       []string
		err         string
	}{
		{args: nil, format: "table"},
		{args: []string{"web", "db"}, format: "json", names: []string{"web", "db"}},
		{args: []string{"h2:"}, format: "table", remote: "h2"},
		{args: []string{"h2:web", "h2:db"}, format: "table", remote: "h2", names: []string{"web", "db"}},
		{args: []string{"h2:web", "db"}, format: "table", err: "one host at a time"},
		{args: []string{"h2:", "h3:"}, format: "table", err: "one host at a time"},
		{format: "yaml", err: `--format "yaml": use table or json`},
		{format: "table", types: []string{"stopped,begun"}, err: `unknown event type "begun"`},
	} {
		filter, remote, err := parseMonitorArgs(tc.args, monitorOptions{format: tc.format, types: tc.types})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || remote != tc.remote || !slices.Equal(filter.Containers, tc.names) {
			t.Errorf("%v: got remote %q names %v err %v, want %q %v", tc.args, remote, filter.Containers, err, tc.remote, tc.names)
		}
	}
}
