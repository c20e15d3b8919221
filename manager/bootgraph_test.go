package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"lodge/config"
)

func TestRotateTo(t *testing.T) {
	for _, tc := range []struct {
		cycle []string
		name  string
		want  []string
	}{
		{[]string{"a", "b", "c", "a"}, "b", []string{"b", "c", "a", "b"}},
		{[]string{"a", "b", "a"}, "a", []string{"a", "b", "a"}},
		{[]string{"a", "b", "a"}, "z", []string{"a", "b", "a"}},
	} {
		if got := rotateTo(tc.cycle, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("rotateTo(%v, %s) = %v, want %v", tc.cycle, tc.name, got, tc.want)
		}
	}
}

// TestGraphOf: a container whose file cannot be read is still a container
// others may name; an override stands in for a container's list.
func TestGraphOf(t *testing.T) {
	web := config.Default()
	web.Boot.After = []string{"db"}
	g := graphOf(map[string]*config.Container{"web": web}, map[string]error{"db": errors.New("broken")}, map[string][]string{"new": {"web"}})
	if !slices.Equal(g.Names(), []string{"db", "new", "web"}) || g.Unknown() != nil || !slices.Equal(g.Dependents("web"), []string{"new"}) {
		t.Errorf("graph: %v, unknown %v", g.Names(), g.Unknown())
	}
}

// TestStopOptions: a container gets its own init.stop_timeout, cut short
// by what is left of shutdown-all's budget, and is killed at once when
// nothing is left.
func TestStopOptions(t *testing.T) {
	cfg := config.Default()
	cfg.Init.StopTimeout = config.Duration(10 * time.Second)
	for _, tc := range []struct {
		left        time.Duration
		wantForce   bool
		wantTimeout time.Duration // 0: below left, not checked exactly
		why         string
	}{
		{time.Minute, false, 10 * time.Second, "still running 10s (init.stop_timeout)"},
		{5 * time.Second, false, 0, "still running when the shutdown's budget ran out"},
		{-time.Second, true, 0, "budget was spent before its turn"},
	} {
		s := &stopper{deadline: time.Now().Add(tc.left)}
		opts, why := s.stopOptions(cfg)
		switch {
		case opts.Force != tc.wantForce, tc.wantTimeout != 0 && opts.Timeout != tc.wantTimeout,
			tc.wantTimeout == 0 && !tc.wantForce && (opts.Timeout <= 0 || opts.Timeout > tc.left),
			!strings.Contains(why, tc.why):
			t.Errorf("%s left: %+v, %q", tc.left, opts, why)
		}
	}
}

// TestCheckpointNeedsTime: shutdown-all begins no checkpoint with less
// than MinCheckpointLeft of its budget left (a dump cannot be cut short),
// and says why, for the container to be stopped cleanly instead.
func TestCheckpointNeedsTime(t *testing.T) {
	for _, tc := range []struct {
		left time.Duration
		why  string
	}{
		{MinCheckpointLeft / 2, "too little to begin a checkpoint"},
		{-time.Second, "budget was spent before its turn"},
	} {
		var said []string
		s := &stopper{deadline: time.Now().Add(tc.left)} // no manager: nothing may be begun
		_, err := s.checkpoint(context.Background(), "c", func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) })
		if err == nil || !strings.Contains(err.Error(), tc.why) || len(said) != 1 || !strings.Contains(said[0], "stopping it cleanly instead") {
			t.Errorf("%s left: %v, said %q", tc.left, err, said)
		}
	}
}
