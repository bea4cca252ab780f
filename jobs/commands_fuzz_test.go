package jobs

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseCommands feeds ParseCommands comment bodies like those of the
// end-to-end tests (commands alone, after prose, with arguments, in
// fences and quotes, paths that are prose) and what the fuzzer derives
// from them. It asserts that every command comes, in order, from a line
// of its own that starts with "/" outside a fence, with a valid
// lower-case name and the line's words as arguments; that there are at
// most maxCommands; that text appended on later lines never changes the
// commands before it; and that a body wrapped in a fence has none.
func FuzzParseCommands(f *testing.F) {
	for _, s := range []string{
		"/retrain",
		"Looks good, one more time please:\n/retrain",
		"/deploy staging --force",
		"/rollback production 2",
		"  /ok-to-test  \r\n/cancel",
		"/help\n/help\n/help\n/help\n/help\n/help",
		"```\n/retrain\n```\n/deploy",
		"~~~sh\n/usr/bin/python train.py\n~~~",
		"> /retrain\nquoted, not a command",
		"see /retrain and /usr/bin/python",
		"/Retrain now\t please",
		"/ \n/-x\n/9a\n/a_b\n/",
		ReplyMarker + "\n/retrain",
		"/deploy\u00a0staging\n/ok-to-test\u2028/cancel",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		cmds := ParseCommands(body)
		if len(cmds) > maxCommands {
			t.Fatalf("%d commands, at most %d allowed", len(cmds), maxCommands)
		}
		lines := strings.Split(body, "\n")
		next := 0 // the line after the previous command's
		fenced := false
		for _, c := range cmds {
			if !commandName.MatchString(c.Name) || c.Name != strings.ToLower(c.Name) {
				t.Fatalf("command name %q", c.Name)
			}
			for _, a := range c.Args {
				if a == "" || len(strings.Fields(a)) != 1 {
					t.Fatalf("argument %q of /%s is not one word", a, c.Name)
				}
			}
			found := false
			for ; next < len(lines) && !found; next++ {
				line := strings.TrimSpace(lines[next])
				if strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
					fenced = !fenced
					continue
				}
				words := strings.Fields(strings.TrimPrefix(line, "/"))
				found = !fenced && strings.HasPrefix(line, "/") && len(words) > 0 &&
					strings.ToLower(words[0]) == c.Name && slices.Equal(words[1:], c.Args)
			}
			if !found {
				t.Fatalf("command %+v is not at the start of a line of its own, outside fences, after the previous one in %q", c, body)
			}
		}
		// Later lines never change earlier commands: a reply quoting the
		// thread below cannot rewrite what was asked above it.
		more := ParseCommands(body + "\n/cancel\n```\n/retrain")
		if len(more) < len(cmds) || !equalCommands(more[:len(cmds)], cmds) {
			t.Fatalf("appending lines changed the commands before them: %+v then %+v", cmds, more)
		}
		if !strings.Contains(body, "```") && !strings.Contains(body, "~~~") {
			if got := ParseCommands("```\n" + body + "\n```"); len(got) != 0 {
				t.Fatalf("commands inside a fence: %+v", got)
			}
		}
	})
}

func equalCommands(a, b []Command) bool {
	return slices.EqualFunc(a, b, func(x, y Command) bool {
		return x.Name == y.Name && slices.Equal(x.Args, y.Args)
	})
}
