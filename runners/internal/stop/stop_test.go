package stop

import (
	"context"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWatch runs real commands under Watch and checks why and how each was
// stopped: not at all, by SIGTERM, or by SIGKILL after the grace period.
func TestWatch(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		cancel  bool // cancel the context once the command runs
		want    Reason
		term    bool // term was called
		kill    bool // kill was called
		signal  syscall.Signal
	}{
		{name: "exits by itself", script: "exit 3", timeout: time.Minute, want: NotStopped},
		{name: "no timeout", script: "exit 0", want: NotStopped},
		{name: "timeout, stops on SIGTERM", script: "sleep 30", timeout: 50 * time.Millisecond, want: TimedOut, term: true, signal: syscall.SIGTERM},
		// The timeout leaves the shell ample time to set its trap first.
		{name: "timeout, ignores SIGTERM", script: "trap '' TERM; while :; do sleep 0.05; done", timeout: 300 * time.Millisecond,
			want: TimedOut, term: true, kill: true, signal: syscall.SIGKILL},
		{name: "canceled", script: "sleep 30", cancel: true, want: Canceled, term: true, signal: syscall.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.Command("/bin/sh", "-c", tt.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var termed, killed atomic.Bool
			exited := make(chan struct{})
			stopped := Watch(ctx, tt.timeout, 200*time.Millisecond, exited,
				func() { termed.Store(true); cmd.Process.Signal(syscall.SIGTERM) },
				func() { killed.Store(true); cmd.Process.Kill() })
			if tt.cancel {
				cancel()
			}
			err := cmd.Wait()
			close(exited)
			if got := <-stopped; got != tt.want {
				t.Errorf("reason = %v, want %v", got, tt.want)
			}
			if termed.Load() != tt.term || killed.Load() != tt.kill {
				t.Errorf("term called %v, kill called %v; want %v, %v", termed.Load(), killed.Load(), tt.term, tt.kill)
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case tt.signal == 0 && ws.Signaled():
				t.Errorf("the command died of %v; it should have exited (%v)", ws.Signal(), err)
			case tt.signal != 0 && (!ws.Signaled() || ws.Signal() != tt.signal):
				t.Errorf("the command ended with %v; want death by %v", err, tt.signal)
			}
		})
	}
}
