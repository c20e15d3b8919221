package manager

import (
	"strings"
	"testing"

	"lodge/internal/cgroup"
)

func TestInContainerGroup(t *testing.T) {
	bases := map[string]string{"memory": "/process_api/x/lodge", "unified": "/lodge", "systemd": "/lodge"}
	cases := []struct {
		cgroup, name string
		want         bool
	}{
		{"4:memory:/process_api/x/lodge/web1\n0::/lodge/web1\n", "web1", true},
		{"1:name=systemd:/lodge/web1/init.scope\n", "web1", true},
		// A nested container's processes belong to the outer one.
		{"0::/lodge/outer/system.slice/lodge/inner\n", "outer", true},
		{"0::/lodge/outer/system.slice/lodge/inner\n", "inner", false},
		{"0::/lodge/web10\n", "web1", false},
		{"0::/lodge\n", "web1", false},
		{"0::/lodge/.monitor/web1\n", "web1", false},
		// The caller's cgroup, where containers used to go, is not the base.
		{"0::/user.slice/session-3.scope/lodge/web1\n", "web1", false},
		{"3:cpuset:/lodge/web1\n", "web1", false}, // no base known on that hierarchy
	}
	for _, c := range cases {
		lines, err := cgroup.ParseProcCgroup(strings.NewReader(c.cgroup))
		if err != nil {
			t.Fatal(err)
		}
		if got := inContainerGroup(lines, bases, c.name); got != c.want {
			t.Errorf("inContainerGroup(%q, %q) = %v; want %v", c.cgroup, c.name, got, c.want)
		}
	}
}
