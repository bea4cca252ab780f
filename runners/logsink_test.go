package runners

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// readLog closes s and returns the file's content.
func closeAndRead(t *testing.T, s *LogSink, path string) string {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogSinkMasks(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"no secrets", nil, "hello\nworld\n", "hello\nworld\n"},
		{"short values ignored", []string{"abc", ""}, "abc abc\n", "abc abc\n"},
		{"one occurrence", []string{"hunter22"}, "pw=hunter22 ok\n", "pw=*** ok\n"},
		{"many occurrences", []string{"hunter22"}, "hunter22hunter22 hunter22", "****** ***"},
		{"at end of stream", []string{"hunter22"}, "x hunter22", "x ***"},
		{"prefix only at end", []string{"hunter22"}, "x hunter2", "x hunter2"},
		{"longest wins at same start", []string{"tok1", "tok1-long"}, "a tok1-long b tok1 c", "a *** b *** c"},
		{"overlapping secrets masked as one", []string{"abcdef", "defghi"}, "xabcdefghiy", "x***y"},
		{"nested secret", []string{"secretvalue", "value"}, "[secretvalue][value]", "[***][***]"},
		{"duplicates", []string{"s3cr3t", "s3cr3t"}, "s3cr3t", "***"},
		{"multi-line secret", []string{"-----BEGIN\nKEY-----"}, "a\n-----BEGIN\nKEY-----\nb\n", "a\n***\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every way of cutting the input in two, and byte by byte, must
			// give the same masked log: secrets straddle writes in practice.
			splits := [][]string{}
			for i := 0; i <= len(tt.in); i++ {
				splits = append(splits, []string{tt.in[:i], tt.in[i:]})
			}
			splits = append(splits, strings.Split(tt.in, ""))
			for _, parts := range splits {
				path := filepath.Join(t.TempDir(), "log")
				s, err := NewLogSink(path, tt.secrets)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range parts {
					if n, err := s.Write([]byte(p)); n != len(p) || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
				}
				got := closeAndRead(t, s, path)
				if got != tt.want {
					t.Fatalf("writes %q: file = %q, want %q", parts, got, tt.want)
				}
				if tail := s.Tail(0); tail != tt.want {
					t.Fatalf("writes %q: Tail = %q, want %q", parts, tail, tt.want)
				}
			}
		})
	}
}

func TestLogSinkTruncatesFile(t *testing.T) {
	tests := []struct {
		name        string
		max         int64
		writes      []string
		wantFile    string
		wantWritten int64
		wantDropped int64
	}{
		{"under the cap", 100, []string{"abc\n"}, "abc\n", 4, 0},
		{"exactly the cap", 4, []string{"abc\n"}, "abc\n", 4, 0},
		{"cut mid-line", 6, []string{"abc\n", "defgh\n"}, "abc\nde\n[mlbot: log truncated after 6 bytes]\n", 6, 4},
		{"cut at line end", 4, []string{"abc\n", "def\n", "ghi\n"}, "abc\n[mlbot: log truncated after 4 bytes]\n", 4, 8},
		{"zero cap", 0, []string{"abc\n"}, "[mlbot: log truncated after 0 bytes]\n", 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			s, err := NewLogSink(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.MaxFileBytes = tt.max
			for _, w := range tt.writes {
				s.Write([]byte(w))
			}
			if got := closeAndRead(t, s, path); got != tt.wantFile {
				t.Errorf("file = %q, want %q", got, tt.wantFile)
			}
			if s.Written() != tt.wantWritten || s.Dropped() != tt.wantDropped {
				t.Errorf("Written, Dropped = %d, %d; want %d, %d", s.Written(), s.Dropped(), tt.wantWritten, tt.wantDropped)
			}
			// The tail still sees what the file dropped: the end of a
			// runaway log is the part worth reading.
			if got, want := s.Tail(0), strings.Join(tt.writes, ""); got != want {
				t.Errorf("Tail = %q, want %q", got, want)
			}
		})
	}
}

func TestLogSinkTail(t *testing.T) {
	tests := []struct {
		name      string
		tailBytes int
		in        string
		maxLines  int
		want      string
	}{
		{"all lines", 1024, "a\nb\nc\n", 0, "a\nb\nc\n"},
		{"last two", 1024, "a\nb\nc\n", 2, "b\nc\n"},
		{"unterminated last line counts", 1024, "a\nb\nc", 2, "b\nc"},
		{"more lines asked than kept", 1024, "a\nb\n", 10, "a\nb\n"},
		{"wrapped drops the cut line", 8, "line1\nline2\nline3\n", 0, "line3\n"},
		{"exactly full keeps everything", 6, "ab\ncd\n", 0, "ab\ncd\n"},
		{"empty", 1024, "", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewLogSink("", nil)
			if err != nil {
				t.Fatal(err)
			}
			s.TailBytes = tt.tailBytes
			for _, c := range []byte(tt.in) { // wrap-around at every offset
				s.Write([]byte{c})
			}
			if got := s.Tail(tt.maxLines); got != tt.want {
				t.Errorf("Tail(%d) = %q, want %q", tt.maxLines, got, tt.want)
			}
		})
	}
}

func TestLogSinkConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	s, err := NewLogSink(path, []string{"TOPSECRET"})
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(s, "writer %d line %d TOPSECRET\n", w, i)
			}
		}()
	}
	wg.Wait()
	got := closeAndRead(t, s, path)
	if strings.Contains(got, "TOPSECRET") {
		t.Error("secret reached the file")
	}
	if n := strings.Count(got, "***\n"); n != writers*lines {
		t.Errorf("got %d whole masked lines, want %d", n, writers*lines)
	}
	if s.Written() != int64(len(got)) {
		t.Errorf("Written = %d, file has %d bytes", s.Written(), len(got))
	}
}

func TestLogSinkWriteAfterClose(t *testing.T) {
	s, err := NewLogSink("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewLogSinkBadPath(t *testing.T) {
	_, err := NewLogSink(filepath.Join(t.TempDir(), "missing", "log"), nil)
	if !os.IsNotExist(err) && !strings.Contains(fmt.Sprint(err), "no such file") {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

// logChunk is 32 KiB of log-like text with a secret in every line, and
// one cut in two by the boundary between consecutive chunks, so that the
// carry-over path is exercised.
func logChunk(secret string) []byte {
	var b bytes.Buffer
	b.WriteString(secret[len(secret)/2:] + "\n")
	for i := 0; b.Len() < 32<<10; i++ {
		fmt.Fprintf(&b, "step %6d loss=0.%06d lr=3e-4 token=%s grad_norm=1.2345\n", i, i*7919%1000000, secret)
	}
	b.Truncate(32<<10 - len(secret)/2)
	b.WriteString(secret[:len(secret)/2])
	return b.Bytes()
}

// TestLogSinkWriteDoesNotAllocate guards the benchmark's claim in a plain
// test run: memory per Write is constant, so a 1 GiB log costs no more
// than a small one.
func TestLogSinkWriteDoesNotAllocate(t *testing.T) {
	for _, secrets := range [][]string{nil, {"ghp_0123456789abcdef", "hunter22"}} {
		s, err := NewLogSink(filepath.Join(t.TempDir(), "log"), secrets)
		if err != nil {
			t.Fatal(err)
		}
		s.MaxFileBytes = 1 << 20
		chunk := logChunk("ghp_0123456789abcdef")
		s.Write(chunk) // first Write allocates the tail ring
		// 100 runs of 32 KiB cross the 1 MiB cap, so the truncation path
		// (one notice, then drops) is measured too.
		if n := testing.AllocsPerRun(100, func() { s.Write(chunk) }); n > 0.05 {
			t.Errorf("secrets %q: %.2f allocations per Write, want 0", secrets, n)
		}
		if s.Dropped() == 0 {
			t.Error("test did not reach the file cap")
		}
		s.Close()
	}
}

// BenchmarkLogSink writes b.N chunks of 32 KiB; run 1 GiB with
// -benchtime=32768x. Allocations per op must stay at zero.
func BenchmarkLogSink(b *testing.B) {
	for _, bc := range []struct {
		name    string
		secrets []string
	}{
		{"plain", nil},
		{"masked", []string{"ghp_0123456789abcdef", "hunter22", "AKIAIOSFODNN7EXAMPLE"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := NewLogSink(filepath.Join(b.TempDir(), "log"), bc.secrets)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			chunk := logChunk("ghp_0123456789abcdef")
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.Write(chunk)
			}
			b.StopTimer()
			if bc.secrets != nil && strings.Contains(s.Tail(0), "ghp_0123456789abcdef") {
				b.Fatal("secret in tail")
			}
		})
	}
}
