package report

import (
	"strings"
	"testing"
	"unicode"
)

// bidiAndFormat are the characters an attacker uses to make text read as
// something else: bidirectional overrides, embeddings, isolates and marks,
// and invisible joiners and spaces.
var bidiAndFormat = []rune{
	'\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069',
	'\u200E', '\u200F', '\u061C', '\u200B', '\u200C', '\u200D', '\uFEFF', '\u2060', '\u2061',
	'\u2062', '\u2063', '\u2064', '\u00AD', '\U000E0041',
}

func TestStripFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"accuracy", "accuracy"},
		{"acc\u202Euracy", "accuracy"},
		{"\u2066feature\u2069/\u200Fmain\u200E", "feature/main"},
		{"zero\u200Bwidth\u200C\u200D\uFEFF\u2060\u2064", "zerowidth"},
		{"سلام\u061C world", "سلام world"},
		{"tag\U000E0041s", "tags"},
		{"émoji 👍 ok", "émoji 👍 ok"},
		{"@\u200doctocat <!\u200d--", "@octocat <!--"},
	}
	for _, tt := range tests {
		if got := StripFormat(tt.in); got != tt.want {
			t.Errorf("StripFormat(%+q) = %+q, want %+q", tt.in, got, tt.want)
		}
	}
	for _, r := range bidiAndFormat {
		if got := StripFormat("a" + string(r) + "b"); got != "ab" {
			t.Errorf("StripFormat kept %U: %+q", r, got)
		}
	}
}

func TestStripFormatMarkdown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"@\u200doctocat", "@\u200doctocat"},
		{"<!\u200d-- x -->", "<!\u200d-- x -->"},
		{"a\u200db @\u202E\u200dx", "ab @\u200dx"},
		{"\u202Eevil\u202C and `acc\u202Euracy`", "evil and `accuracy`"},
	}
	for _, tt := range tests {
		if got := StripFormatMarkdown(tt.in); got != tt.want {
			t.Errorf("StripFormatMarkdown(%+q) = %+q, want %+q", tt.in, got, tt.want)
		}
	}
}

// TestRenderStripsFormatCharacters puts bidirectional overrides and
// invisible characters into every untrusted part of a comment: none of
// them may reach the body, whose only format characters are the joiners
// mlbot itself puts after "@" and into "<!--".
func TestRenderStripsFormatCharacters(t *testing.T) {
	evil := func(s string) string {
		var b strings.Builder
		for i, r := range s {
			b.WriteRune(r)
			b.WriteRune(bidiAndFormat[i%len(bidiAndFormat)])
		}
		return b.String()
	}
	spec := map[string]Spec{"acc\u202Euracy": {Goal: GoalMaximize, Min: f(0.99)}}
	head := map[string]float64{"acc\u202Euracy": 0.9, evil("loss"): 0.2}
	for _, o := range []Outcome{OutcomeGateFailed, OutcomeStepFailed, OutcomeConfigError, OutcomeError, Outcome(evil("odd"))} {
		c := Comment{
			Outcome: o, HeadSHA: headSHA, BaseSHA: baseSHA,
			Diff:     Compute(map[string]float64{"acc\u202Euracy": 0.95}, head, spec, []string{"acc\u202Euracy"}),
			BaseNote: evil("base run of branch feature"),
			Detail:   evil("train exited on branch \u202Eniam @octocat"),
			LogTail:  evil("Traceback\nKeyError") + "\n<!-- x --> @\u202Eme\n",
		}
		got := Render(c)
		prev2, prev := rune(0), rune(0)
		for _, r := range got {
			if unicode.Is(unicode.Cf, r) && !(r == '\u200d' && (prev == '@' || prev2 == '<' && prev == '!')) {
				t.Errorf("%s: comment holds %U:\n%s", o, r, got)
				break
			}
			prev2, prev = prev, r
		}
		for _, want := range []string{"accuracy", "branch niam"} {
			if o != OutcomeConfigError && !strings.Contains(got, want) {
				t.Errorf("%s: comment lacks %q:\n%s", o, want, got)
			}
		}
	}
}
