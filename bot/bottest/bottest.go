// Package bottest holds the checks the forges' webhook parser tests (and
// their fuzz targets) make of every event they parse, whichever host it
// came from.
package bottest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mlbot/mlbot/bot"
)

// CheckTime fails t unless a host timestamp is zero or in UTC, so that two
// events' times compare the same however the host wrote its offset.
func CheckTime(t testing.TB, what string, tm time.Time) {
	t.Helper()
	if !tm.IsZero() && tm.Location() != time.UTC {
		t.Fatalf("%s: %v is not in UTC", what, tm)
	}
}

// RoundTrip fails t unless ev survives JSON encoding unchanged, as its
// repository and pull request do in every queued pipeline task. The event
// type comes from a header, not the JSON body, so it is compared only
// when it is valid UTF-8.
func RoundTrip(t testing.TB, ev *bot.Event) {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back bot.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if !utf8.ValidString(ev.Type) {
		back.Type = ev.Type
	}
	if !reflect.DeepEqual(*ev, back) {
		t.Fatalf("JSON round trip changed the event:\n%+v\n%+v", *ev, back)
	}
}
