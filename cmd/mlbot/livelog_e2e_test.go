package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// liveModel trains slowly, printing a line per epoch, so that its log can
// be watched while it runs.
func liveModel(epochs int, every string) map[string]string {
	files := (&e2e{}).model("0.9")
	files["train.sh"] = "i=1; while [ $i -le " + strconv.Itoa(epochs) + " ]; do echo \"epoch $i\"; i=$((i+1)); sleep " + every + "; done\ncp params model.txt\n"
	return files
}

// runningURL waits for sha's "running" status and returns its run page.
func (e *e2e) runningURL(sha string) string {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range e.sb.statuses(sha) {
			if (s.State == "running" || s.State == "pending") && strings.Contains(s.TargetURL, "/runs/") {
				return s.TargetURL
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("no running status with a run page on %s: %+v", sha[:7], e.sb.statuses(sha))
	return ""
}

// A contributor watching the run page sees the training's lines while it
// trains, through the webhook → worker → sandbox → store → page path,
// and the stream ends with the outcome.
func TestRunPageStreamsTheLogWhileTraining(t *testing.T) {
	for _, forge := range []string{"github", "gitlab"} {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, nil)
			e.mainSHA = e.commit("main", liveModel(6, "0.4"), "slow model")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			page := e.runningURL(e.mainSHA)
			resp, err := http.Get(page + "/log/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			var (
				sawEpoch1WhileRunning, sawEnd bool
				log                           strings.Builder
				name                          string
				data                          []string
			)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "event: "):
					name = line[7:]
				case strings.HasPrefix(line, "data: "):
					data = append(data, line[6:])
				case line == "" && name == "log":
					log.WriteString(strings.Join(data, "\n"))
					if !sawEpoch1WhileRunning && strings.Contains(log.String(), "epoch 1\n") {
						// The training is still going: its final status is not posted.
						ss := e.sb.statuses(e.mainSHA)
						sawEpoch1WhileRunning = len(ss) > 0 && (ss[len(ss)-1].State == "running" || ss[len(ss)-1].State == "pending")
					}
					name, data = "", nil
				case line == "" && name == "end":
					sawEnd = true
					if got := strings.Join(data, "\n"); got != "passed" {
						t.Errorf("end event %q, want passed", got)
					}
				case line == "":
					name, data = "", nil
				}
				if sawEnd {
					break
				}
			}
			if !sawEpoch1WhileRunning {
				t.Errorf("epoch 1 did not reach the page while the run was running; log:\n%s", log.String())
			}
			if !sawEnd || !strings.Contains(log.String(), "epoch 6") || !strings.Contains(log.String(), "metrics collected") {
				t.Errorf("stream ended early (end %v); log:\n%s", sawEnd, log.String())
			}
			if st := e.final(e.mainSHA); st.State != "success" {
				t.Errorf("final status %+v", st)
			}
		})
	}
}
