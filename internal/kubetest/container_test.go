package kubetest

import "testing"

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "$(A)"}
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)/y", "x/y"},
		{"$(A)$(A)", "xx"},
		{"$(B)", "$(A)"}, // values are not expanded twice
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$A $", "$A $"},
		{"$(A", "$(A"},
	} {
		if got := expandVars(c.in, vars); got != c.want {
			t.Errorf("expandVars(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPathMapTranslate(t *testing.T) {
	m := pathMap{{"/mlbot/bin", "/h/bin"}, {"/work", "/h/work"}}
	for _, c := range []struct{ in, want string }{
		{"/work", "/h/work"},
		{"/work/a/b", "/h/work/a/b"},
		{"/workspace", "/workspace"},
		{"/mlbot/bin/mlbot", "/h/bin/mlbot"},
		{"relative/work", "relative/work"},
	} {
		if got := m.translate(c.in); got != c.want {
			t.Errorf("translate(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
