package web

import (
	"io"
	"os"
)

// maxPageLog bounds how much of a log file a page shows (its end).
const maxPageLog = 256 << 10

// logEnd returns the last maxPageLog bytes of the log file at path, or
// fallback when this process cannot read it (another machine wrote it).
func logEnd(path, fallback string) string {
	if path == "" {
		return fallback
	}
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxPageLog {
		f.Seek(st.Size()-maxPageLog, io.SeekStart)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPageLog))
	if err != nil {
		return fallback
	}
	return string(b)
}
