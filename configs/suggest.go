package configs

import (
	"fmt"
	"strings"
)

// closest returns the candidate a user most likely meant when typing word, or
// "" when none is near enough to be a plausible typo. Distances count a
// swapped pair of letters as one edit, since "trian" for "train" is the most
// common slip.
func closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(w, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// Allow roughly one edit per three letters, but at least one and at most
	// two, so that short keys do not attract unrelated suggestions.
	limit := min(max(len(w)/3, 1), 2)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// didYouMean formats the hint appended to "unknown ..." messages: a
// suggestion when there is a close match, otherwise the full list of choices.
func didYouMean(word string, candidates []string) string {
	if c := closest(word, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return " (expected one of: " + strings.Join(candidates, ", ") + ")"
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// characters each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rolling rows are enough because a transposition looks back two rows.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
