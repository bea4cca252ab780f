package runners

import (
	"bytes"
	"sort"
)

// minSecretLen is the shortest value treated as a secret. Shorter values
// ("1", "yes", "dev") occur in ordinary output so often that masking them
// would make logs unreadable while protecting nothing.
const minSecretLen = 4

// mask is what a secret is replaced with.
var mask = []byte("***")

// maskChunk bounds how much input the masker copies into its working buffer
// at once, so a single huge Write does not make the buffer grow.
const maskChunk = 32 << 10

// masker replaces secret values in a byte stream. It holds back the end
// of each write that could begin a secret (at most hold bytes), because a
// secret may straddle two writes and must not reach the output
// half-masked; the rest goes out at once, so that a line the training
// printed before a long silence reaches the live log.
type masker struct {
	secrets [][]byte // longest first, so that at equal starts the longest wins
	hold    int      // len(longest secret) - 1
	buf     []byte   // carry-over (buf[:carry]) followed by the chunk being scanned
	carry   int
	next    []int // per secret: next occurrence at or after the scan position; -1 none, -2 unknown
	out     func([]byte)
}

// newMasker returns a masker that sends masked bytes to out. It returns nil
// when no value is long enough to be a secret, so the caller can skip masking.
func newMasker(secrets []string, out func([]byte)) *masker {
	seen := map[string]bool{}
	var list [][]byte
	for _, s := range secrets {
		if len(s) < minSecretLen || seen[s] {
			continue
		}
		seen[s] = true
		list = append(list, []byte(s))
	}
	if len(list) == 0 {
		return nil
	}
	sort.SliceStable(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	hold := len(list[0]) - 1
	return &masker{
		secrets: list,
		hold:    hold,
		buf:     make([]byte, 0, hold+maskChunk),
		next:    make([]int, len(list)),
		out:     out,
	}
}

// write masks p and emits everything that can no longer be part of a secret.
func (m *masker) write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), cap(m.buf)-m.carry)
		m.buf = append(m.buf[:m.carry], p[:n]...)
		p = p[n:]
		done := m.scan(m.buf, false)
		m.carry = copy(m.buf, m.buf[done:])
		m.buf = m.buf[:m.carry]
	}
}

// flush masks and emits the held-back bytes; the stream is over, so a
// partial secret there can no longer complete.
func (m *masker) flush() {
	m.scan(m.buf[:m.carry], true)
	m.carry = 0
	m.buf = m.buf[:0]
}

// scan emits data with secrets masked and returns how many bytes of data
// it consumed; the rest is undecided until more input (or the end, when
// final) arrives, because a secret may start in it. Overlapping occurrences
// of different secrets are masked as one span, so no fragment of either
// leaks.
func (m *masker) scan(data []byte, final bool) int {
	// undecided is where the end that could begin a secret starts.
	limit, undecided := len(data), len(data)
	if !final {
		undecided -= m.partial(data)
		limit = undecided
	}
	for i := range m.next {
		m.next[i] = -2
	}
	pos := 0
	for {
		start, end := -1, -1
		for i, s := range m.secrets {
			n := m.nextAt(i, data, pos)
			if n < 0 || n >= limit {
				continue
			}
			if start < 0 || n < start {
				start, end = n, n+len(s)
			}
		}
		if start < 0 {
			break
		}
		end = m.extend(data, start, end)
		if start > pos {
			m.out(data[pos:start])
		}
		if !final && end > undecided && len(data)-start < maskChunk {
			// Another secret overlapping the span's end may complete in the
			// next write; decide then. The size check bounds the carry-over
			// (and so memory) even for an endless chain of overlaps.
			return start
		}
		m.out(mask)
		pos = end
	}
	if pos < limit {
		m.out(data[pos:limit])
		pos = limit
	}
	return pos
}

// partial returns the length of the longest end of data that is the
// beginning of a secret (and not all of it): what scan must hold back.
func (m *masker) partial(data []byte) int {
	for k := min(m.hold, len(data)); k > 0; k-- {
		tail := data[len(data)-k:]
		for _, s := range m.secrets {
			if len(s) > k && bytes.HasPrefix(s, tail) {
				return k
			}
		}
	}
	return 0
}

// nextAt returns the first occurrence of secret i in data at or after pos,
// reusing the previous search while it is still ahead of pos.
func (m *masker) nextAt(i int, data []byte, pos int) int {
	n := m.next[i]
	if n == -1 || n >= pos {
		return n
	}
	if k := bytes.Index(data[pos:], m.secrets[i]); k >= 0 {
		n = pos + k
	} else {
		n = -1
	}
	m.next[i] = n
	return n
}

// extend grows the masked span [start, end) over every occurrence that
// overlaps it and lies wholly inside data.
func (m *masker) extend(data []byte, start, end int) int {
	for grown := true; grown; {
		grown = false
		for _, s := range m.secrets {
			for q := start + 1; q < end; {
				k := bytes.Index(data[q:min(end+len(s)-1, len(data))], s)
				if k < 0 {
					break
				}
				if e := q + k + len(s); e > end {
					end, grown = e, true
				}
				q += k + 1
			}
		}
	}
	return end
}
