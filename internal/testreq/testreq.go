// Package testreq decides what a test does when an outside server it needs
// (a Prometheus binary, a real Redis) is not on the machine: on a fresh
// clone with nothing but Go the test skips and says what it needs; where
// MLBOT_TEST_REQUIRE names the server, as in CI, its absence fails the test
// instead, so nothing is skipped unnoticed.
package testreq

import (
	"os"
	"strings"
	"testing"
)

// Env is the environment variable listing the servers whose absence fails
// a test: comma-separated names such as "prometheus,redis".
const Env = "MLBOT_TEST_REQUIRE"

// Required reports whether MLBOT_TEST_REQUIRE names server.
func Required(server string) bool {
	for _, name := range strings.Split(os.Getenv(Env), ",") {
		if strings.EqualFold(strings.TrimSpace(name), server) {
			return true
		}
	}
	return false
}

// Missing ends t because server is not available: it skips with a message
// naming server and why (format and args), or fails when Required(server).
func Missing(t testing.TB, server, format string, args ...any) {
	t.Helper()
	if Required(server) {
		t.Fatalf(server+" is required ("+Env+"="+os.Getenv(Env)+") but missing: "+format, args...)
		return
	}
	t.Skipf("skipped: needs "+server+" ("+Env+"="+server+" makes this a failure): "+format, args...)
}
