package main

import (
	"io"
	"testing"
)

// -density-lxc-max defaults to -density-max, so that LXC is measured at
// every count lodge is, and still caps LXC when given.
func TestDensityLXCMaxDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 500},
		{[]string{"-density-max", "40"}, 40},
		{[]string{"-density-max", "40", "-density-lxc-max", "10"}, 10},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.densityLXCMax != tc.want {
			t.Errorf("%v: -density-lxc-max = %d, want %d", tc.args, o.densityLXCMax, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-density-lxc-max", "-1"}, io.Discard); err == nil {
		t.Error("-density-lxc-max -1 was accepted")
	}
}
