package manager

import "testing"

func TestContainerGroup(t *testing.T) {
	cases := []struct {
		path, parent, name, group string
		ok                        bool
	}{
		{"/lodge/web1", "lodge", "web1", "/lodge/web1", true},
		{"/user.slice/session-3.scope/lodge/web1/init.scope", "lodge", "web1", "/user.slice/session-3.scope/lodge/web1", true},
		// A nested container's processes belong to the outer one.
		{"/lodge/outer/system.slice/lodge/inner", "lodge", "outer", "/lodge/outer", true},
		{"/lodge", "lodge", "", "", false},
		{"/", "lodge", "", "", false},
		{"/other/web1", "lodge", "", "", false},
		{"/lodge/not..valid", "lodge", "", "", false},
	}
	for _, c := range cases {
		name, group, ok := containerGroup(c.path, c.parent)
		if name != c.name || group != c.group || ok != c.ok {
			t.Errorf("containerGroup(%q, %q) = %q, %q, %v; want %q, %q, %v", c.path, c.parent, name, group, ok, c.name, c.group, c.ok)
		}
	}
}
