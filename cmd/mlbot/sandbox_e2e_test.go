package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/configs"
	"github.com/mlbot/mlbot/runners/sandbox"
)

// TestApprovedForkAttacks replays the security review's attacks (issue 8,
// findings 1–3) the way they were made: a fork opens a pull request, a
// maintainer approves it with /ok-to-test, and its train.sh attacks mlbot
// from inside the run. Each attack must fail and the pull request must
// still get its report.
func TestApprovedForkAttacks(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed: the attacks use its /dev/tcp")
	}
	for _, forge := range forges {
		t.Run(forge+"/redis is out of reach", func(t *testing.T) {
			e := newE2E(t, forge, nil)
			e.baseline("0.90")
			opt, _ := redis.ParseURL(e.app.cfg.RedisURL)
			host, port, _ := strings.Cut(opt.Addr, ":")
			// The review's training found Redis in /proc/net/tcp and spoke
			// RESP to it. Reaching the port at all is the failure here.
			probe := fmt.Sprintf(`echo "listening sockets seen: $(($(wc -l < /proc/net/tcp) - 1))"
if bash -c 'exec 3<>/dev/tcp/%s/%s && printf "*1\r\n\$4\r\nPING\r\n" >&3 && head -c 7 <&3' ; then echo "REACHED REDIS"; exit 42; fi
cp params model.txt
`, host, port)
			h := e.approvedFork(map[string]string{"params": "0.91\n", "train.sh": probe})
			st := e.final(h)
			if st.State != "success" {
				t.Fatalf("the approved fork's status %+v: its probe reached Redis at %s or the run failed", st, opt.Addr)
			}
			// The probe itself works: a trusted run keeps the host's
			// network and does reach the port (where Redis's password and
			// the task signatures protect mlbot).
			h2 := e.commit("trusted", map[string]string{"params": "0.92\n", "train.sh": probe}, "trusted probe")
			e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "trusted", HeadSHA: h2, BaseSHA: e.mainSHA, Author: "alice", Association: "MEMBER", Number: 2}), http.StatusAccepted)
			if st := e.final(h2); st.State != "failure" || !strings.Contains(st.Description, "42") {
				t.Errorf("a trusted run's probe: status %+v, want it to reach the port (exit 42)", st)
			}
		})
		t.Run(forge+"/no process outlives the run", func(t *testing.T) {
			e := newE2E(t, forge, nil)
			e.baseline("0.90")
			marker := uniqueMarker()
			escape := fmt.Sprintf(`setsid sleep 3001.%[1]s &
( ( sleep 3002.%[1]s & ) & )
nohup sh -c "trap '' TERM HUP; sleep 3003.%[1]s" >/dev/null 2>&1 &
setsid sh -c 'while :; do cat /proc/[0-9]*/environ 2>/dev/null | tr "\0" "\n" | grep -a -e GIT_CONFIG -e Authorization; sleep 3004.%[1]s; done' &
sleep 0.2
cp params model.txt
`, marker)
			h := e.approvedFork(map[string]string{"params": "0.91\n", "train.sh": escape})
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			if left := hostProcessesWith(marker); len(left) > 0 {
				t.Fatalf("the fork's processes outlived its run: %v", left)
			}
			// A later trusted run (with its fetch and the token) finds
			// nothing of the fork's waiting for it.
			h2 := e.commit("main", map[string]string{"params": "0.93\n"}, "trusted follow-up")
			e.send(e.sb.push(e.hook, e.mainSHA, h2), http.StatusAccepted)
			e.final(h2)
			if left := hostProcessesWith(marker); len(left) > 0 {
				t.Fatalf("processes of the fork during a later run: %v", left)
			}
		})
		t.Run(forge+"/artifacts cannot be tampered with", func(t *testing.T) {
			e := newE2E(t, forge, nil)
			files := e.model("0.90")
			files[".mlbot.yml"] = strings.Replace(files[".mlbot.yml"], "  timeout: 1m\n", "  artifacts: [model.txt]\n  timeout: 1m\n", 1)
			e.mainSHA = e.commit("main", files, "model with artifacts")
			e.send(e.sb.push(e.hook, zeroSHA, e.mainSHA), http.StatusAccepted)
			if st := e.final(e.mainSHA); st.State != "success" {
				t.Fatalf("baseline %+v", st)
			}
			e.settle()
			store := filepath.Join(e.dataDir, "artifacts")
			before := treeDigests(t, store)
			if len(before) == 0 {
				t.Fatal("the baseline stored no artifact")
			}
			tamper := fmt.Sprintf(`echo "in $(pwd)"
for d in ../../../artifacts %[1]s; do
  find "$d" -type f 2>/dev/null | while read -r f; do echo pwned > "$f" 2>/dev/null && echo "TAMPERED $f"; done
  mkdir -p "$d/sha256" 2>/dev/null && echo pwned > "$d/sha256/planted" 2>/dev/null && echo "PLANTED in $d"
done
find / -xdev -path /proc -prune -o -type f -name '*.log' -path '*mlbot*' -print 2>/dev/null | head -3
cp params model.txt
`, store)
			h := e.approvedFork(map[string]string{"params": "0.91\n", "train.sh": tamper})
			if st := e.final(h); st.State != "success" {
				t.Fatalf("status %+v", st)
			}
			e.settle()
			after := treeDigests(t, store)
			for p, d := range before {
				if after[p] != d {
					t.Errorf("artifact %s changed: %s → %s", p, d, after[p])
				}
			}
			for p := range after {
				if _, ok := before[p]; !ok && strings.Contains(p, "planted") {
					t.Errorf("a file was planted in the store: %s", p)
				}
			}
		})
	}
}

// approvedFork pushes files to a fork's branch, opens pull request 1
// from it, has a maintainer approve it and returns the head.
func (e *e2e) approvedFork(files map[string]string) string {
	e.t.Helper()
	h := e.commit("feature", files, "from a fork")
	e.send(e.sb.pr(e.hook, prEvent{Action: "opened", HeadRef: "feature", HeadSHA: h, BaseSHA: e.mainSHA, Fork: true, Author: "mallory", Association: "NONE"}), http.StatusAccepted)
	e.settle()
	e.say("maria", "/ok-to-test")
	return h
}

// hostProcessesWith lists host processes whose command line holds s.
func hostProcessesWith(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// treeDigests maps every file under dir to the SHA-256 of its bytes.
func treeDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

// TestOutOfMemoryIsReportedAsSuch runs a training past MLBOT_SANDBOX_MEMORY:
// the kill is named in the status and the comment, with the limit.
func TestOutOfMemoryIsReportedAsSuch(t *testing.T) {
	if err := sandbox.CheckMemoryCgroup(); err != nil {
		t.Skipf("skipped: no memory cgroup can be made here (%v); RLIMIT_AS then bounds memory and an OOM kill cannot be told apart", err)
	}
	for _, forge := range forges {
		t.Run(forge, func(t *testing.T) {
			e := newE2E(t, forge, func(c *configs.Server) { c.SandboxMemory = 64 << 20 })
			e.baseline("0.90")
			// tail keeps the last line whole, and /dev/zero has no newline.
			h := e.commit("feature", map[string]string{"params": "0.91\n", "train.sh": "set -e\nhead -c 400000000 /dev/zero | tail -n 1 >/dev/null\ncp params model.txt\n"}, "hungry")
			e.send(e.prEvent("opened", h, ""), http.StatusAccepted)
			st := e.final(h)
			if st.State != "failure" || !strings.Contains(st.Description, "out of memory") {
				t.Fatalf("status %+v, want a failure naming the out-of-memory kill", st)
			}
			e.settle()
			cs := e.mlbotComments(1)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, "out of memory") || !strings.Contains(cs[0].Body, "64.0 MiB") {
				t.Fatalf("comment does not name the OOM kill and the limit: %+v", cs)
			}
		})
	}
}
