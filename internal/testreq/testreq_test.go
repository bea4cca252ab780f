package testreq

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how Missing ended it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestMissing(t *testing.T) {
	tests := []struct {
		require string
		fails   bool
	}{
		{"", false},
		{"redis", false},
		{"prometheus", true},
		{"redis, Prometheus ", true},
		{"prometheus-operator", false},
	}
	for _, tt := range tests {
		t.Run(tt.require, func(t *testing.T) {
			t.Setenv(Env, tt.require)
			r := &recorder{TB: t}
			Missing(r, "prometheus", "the prometheus binary is not on PATH (%s)", "exec: not found")
			msg := r.skipped
			if tt.fails {
				msg = r.failed
			}
			if msg == "" || (r.skipped != "" && r.failed != "") {
				t.Fatalf("MLBOT_TEST_REQUIRE=%q: skipped %q, failed %q; want only %s", tt.require, r.skipped, r.failed,
					map[bool]string{true: "a failure", false: "a skip"}[tt.fails])
			}
			for _, want := range []string{"prometheus", "not on PATH (exec: not found)", Env} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}
