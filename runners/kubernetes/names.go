package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Labels and annotations the runner puts on its Jobs, Secrets and pods.
const (
	// LabelRun holds the run's id as a label value (RunLabel).
	LabelRun = "mlbot.run"
	// LabelNetwork is "true" on the pods of jobs given the network, for
	// the NetworkPolicy that lets them out (ops/kubernetes).
	LabelNetwork = "mlbot.network"
	// LabelManagedBy is "mlbot" on everything the runner creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationRun holds the run's id exactly.
	AnnotationRun = "mlbot.run/id"
	// AnnotationAttempt counts the Jobs of a run, from 1 (a second after
	// an eviction).
	AnnotationAttempt = "mlbot.run/attempt"
)

// secretKey is the key of the token in a run's Secret.
const secretKey = "token"

// maxLabel is the longest label value Kubernetes takes.
const maxLabel = 63

// RunLabel is run id's LabelRun value: id itself when it is a valid label
// value, else id with every other character turned into '-', cut short
// and followed by a digest of id, so that two ids never share a label.
func RunLabel(id string) string {
	if validLabel(id) {
		return id
	}
	s := strings.Map(func(r rune) rune {
		if isAlnum(r) || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, id)
	if len(s) > maxLabel-9 {
		s = s[:maxLabel-9]
	}
	s = strings.TrimFunc(s, func(r rune) bool { return !isAlnum(r) })
	if s == "" {
		return digest(id)
	}
	return s + "-" + digest(id)
}

// jobName is the name of attempt n's Job of run id: a DNS label of at
// most 57 characters, so that the names of its pods fit too.
func jobName(id string, attempt int) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case isAlnum(r):
			return r
		}
		return '-'
	}, id)
	if len(s) > 40 {
		s = s[:40]
	}
	if s = strings.Trim(s, "-"); s != "" {
		s += "-"
	}
	return "mlbot-" + s + digest(id) + "-" + strconv.Itoa(attempt)
}

// digest is a short digest of s.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// validLabel reports whether s is a valid label value.
func validLabel(s string) bool {
	if s == "" || len(s) > maxLabel {
		return false
	}
	for _, r := range s {
		if !isAlnum(r) && r != '-' && r != '_' && r != '.' {
			return false
		}
	}
	return isAlnum(rune(s[0])) && isAlnum(rune(s[len(s)-1]))
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
