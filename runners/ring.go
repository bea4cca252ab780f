package runners

// ring keeps the last len(buf) bytes written to it. The buffer is allocated
// once, so keeping a tail costs the same however long the log grows.
type ring struct {
	buf   []byte
	w     int   // next write position
	total int64 // bytes ever written, to tell a full buffer from a wrapped one
}

func newRing(size int) *ring { return &ring{buf: make([]byte, size)} }

// write appends p, overwriting the oldest bytes.
func (r *ring) write(p []byte) {
	r.total += int64(len(p))
	if len(r.buf) == 0 {
		return
	}
	if len(p) >= len(r.buf) {
		copy(r.buf, p[len(p)-len(r.buf):])
		r.w = 0
		return
	}
	n := copy(r.buf[r.w:], p)
	copy(r.buf, p[n:])
	r.w = (r.w + len(p)) % len(r.buf)
}

// bytes returns a copy of the kept bytes, oldest first, and whether older
// bytes were lost (in which case the first kept line is probably cut).
func (r *ring) bytes() ([]byte, bool) {
	if r.total <= int64(len(r.buf)) {
		return append([]byte(nil), r.buf[:r.total]...), false
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.w:]...)
	return append(out, r.buf[:r.w]...), true
}
