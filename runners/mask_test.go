package runners

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// maskAll masks in in one piece.
func maskAll(secrets []string, in string) string {
	var out strings.Builder
	m := newMasker(secrets, func(p []byte) { out.Write(p) })
	m.write([]byte(in))
	m.flush()
	return out.String()
}

// TestMaskerSplitInvariant checks on random text, with secrets drawn from
// the same small alphabet so that they overlap and repeat, that cutting the
// stream anywhere never changes the result and that no secret survives.
func TestMaskerSplitInvariant(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc\n"[r.IntN(4)]
		}
		return string(b)
	}
	for range 2000 {
		secrets := []string{word(4 + r.IntN(3)), word(4 + r.IntN(6))}
		in := word(r.IntN(200))
		want := maskAll(secrets, in)
		var got strings.Builder
		m := newMasker(secrets, func(p []byte) { got.Write(p) })
		for rest := in; rest != ""; {
			n := min(1+r.IntN(12), len(rest))
			m.write([]byte(rest[:n]))
			rest = rest[n:]
		}
		m.flush()
		if got.String() != want {
			t.Fatalf("secrets %q, input %q: split gives %q, whole gives %q", secrets, in, got.String(), want)
		}
		for _, s := range secrets {
			if strings.Contains(want, s) {
				// A secret can only reappear if masking produced it, and
				// "***" has no letters of the alphabet.
				t.Fatalf("secrets %q, input %q: %q survives in %q", secrets, in, s, want)
			}
		}
	}
}

// TestMaskerHoldsBackOnlyWhatMayBeginASecret: a write goes out at once
// but for its end that could begin a secret, so that a training's line
// printed before a long silence reaches the live log; what is held back
// goes out masked or not once the next write decides it.
func TestMaskerHoldsBackOnlyWhatMayBeginASecret(t *testing.T) {
	secrets := []string{"ghp_0123456789abcdefghij", "s3cr3t-webhook"}
	for _, tc := range []struct{ writes, out []string }{
		{[]string{"$ sh train.sh\nstarted\n"}, []string{"$ sh train.sh\nstarted\n"}},
		{[]string{"token ghp_01", "23456789abcdefghij ok\n"}, []string{"token ", "*** ok\n"}},
		{[]string{"a s3cr", "3t-"}, []string{"a ", ""}},
		{[]string{"token gh", "x\n"}, []string{"token ", "ghx\n"}},
	} {
		var got strings.Builder
		m := newMasker(secrets, func(p []byte) { got.Write(p) })
		for i, w := range tc.writes {
			got.Reset()
			m.write([]byte(w))
			if got.String() != tc.out[i] {
				t.Errorf("writes %q: write %d emitted %q, want %q", tc.writes, i, got.String(), tc.out[i])
			}
		}
	}
}
