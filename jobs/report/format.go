package report

import (
	"strings"
	"unicode"
)

// StripFormat removes every Unicode format character (category Cf) from
// s: the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
// U+2066–U+2069), the direction marks (U+200E, U+200F, U+061C), the
// zero-width spaces and joiners (U+200B–U+200D, U+2060–U+2064, U+FEFF) and
// the rest of the category. Text from a host or a repository (metric
// names, branch names, user names, log lines, configuration errors) goes
// through it before it reaches a comment, a status or a page: with them,
// "acc\u202Euracy" reads as another name than the one it is, and text can
// hide or reorder what a reviewer sees. Invalid UTF-8 becomes U+FFFD.
func StripFormat(s string) string {
	if !strings.ContainsFunc(s, isFormat) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isFormat(r) {
			return -1
		}
		return r
	}, s)
}

// StripFormatMarkdown is StripFormat for a whole markdown body that mlbot
// built from untrusted parts. It keeps the zero-width joiners mlbot itself
// puts after "@", so that no one is mentioned, and into "<!--", so that no
// marker is forged; a joiner in those places changes neither what is shown
// nor its order. Every other format character is removed.
func StripFormatMarkdown(s string) string {
	if !strings.ContainsFunc(s, isFormat) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	var prev2, prev rune
	for _, r := range s {
		if isFormat(r) && !(r == '\u200d' && (prev == '@' || prev2 == '<' && prev == '!')) {
			continue
		}
		b.WriteRune(r)
		prev2, prev = prev, r
	}
	return b.String()
}

func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }
