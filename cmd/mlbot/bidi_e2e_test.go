package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"
)

// TestFormatCharactersNeverShown runs a pull request whose branch name,
// metric name and log carry a right-to-left override (U+202E) and other
// invisible format characters, the way a contributor would disguise a
// metric ("acc\u202Euracy" reads "accycarua") or text in a reviewer's
// view. The status, the comment and the run page show the names with the
// characters removed.
func TestFormatCharactersNeverShown(t *testing.T) {
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, nil)
			files := map[string]string{
				".mlbot.yml": "version: 1\npipeline:\n  train: sh train.sh\n  evaluate: sh eval.sh\n  metrics: [metrics.json]\n  timeout: 1m\n",
				"train.sh":   "echo 'training \u202Eevil\u202C \u2066hidden\u2069 zero\u200Bwidth'\n",
				"eval.sh":    "printf '{\"acc\u202Euracy\": %s}' \"$(cat params)\" > metrics.json\n",
				"params":     "0.90\n",
			}
			e.mainSHA = e.commit("main", files, "model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			if st := e.final(e.mainSHA); st.State != "success" {
				t.Fatalf("baseline status %+v", st)
			}
			branch := "feat\u202Eure"
			head := e.commit(branch, map[string]string{"params": "0.91\n"}, "better")
			e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: branch, HeadSHA: head, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER"}), http.StatusAccepted)
			st := e.final(head)
			if st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()

			shown := map[string]string{"status": st.Description}
			if !strings.Contains(st.Description, "accuracy 0.91") {
				t.Errorf("status %q does not name the metric as accuracy", st.Description)
			}
			cs := e.mlbotComments(1)
			if len(cs) != 1 {
				t.Fatalf("%d mlbot comments", len(cs))
			}
			shown["comment"] = cs[0].Body
			if !strings.Contains(cs[0].Body, "| `accuracy` | 0.9 | 0.91 |") {
				t.Errorf("comment does not show the metric as accuracy:\n%s", cs[0].Body)
			}
			for _, sha := range []string{e.mainSHA, head} {
				resp, err := http.Get(e.final(sha).TargetURL)
				if err != nil {
					t.Fatal(err)
				}
				page, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				shown["run page of "+sha[:7]] = string(page)
				if !strings.Contains(string(page), "accuracy") || !strings.Contains(string(page), "training evil hidden zerowidth") {
					t.Errorf("run page of %s lacks the metric or the cleaned log:\n%s", sha[:7], page)
				}
			}
			for where, text := range shown {
				prev2, prev := rune(0), rune(0)
				for _, r := range text {
					// mlbot's own joiners after "@" and in "<!--" are the
					// only format characters allowed.
					if unicode.Is(unicode.Cf, r) && !(r == '\u200d' && (prev == '@' || prev2 == '<' && prev == '!')) {
						t.Errorf("%s shows %U:\n%s", where, r, text)
						break
					}
					prev2, prev = prev, r
				}
			}
		})
	}
}
