package configs

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// A small parser of the Kubernetes quantity notation, the one place mlbot
// reads CPU, memory and shm sizes: those of .mlbot.yml and the operator's
// limits (ParseCPU, ParseBytes: the forms people write, "2", "0.5",
// "500m"; "512Mi", "4Gi", "1G", "1000000") and those a runner is handed
// (ParseQuantity: the whole notation, exponents and n, u suffixes too).
// It is not k8s.io/apimachinery's resource.Quantity, which keeps configs
// and the runners free of the Kubernetes modules. Values are exact
// (big.Rat) and rounded up: a limit of 0.5 bytes is 1 byte, not none.

// A suffix is a unit suffix of the notation and the factor it stands for.
type suffix struct {
	s string
	f *big.Rat
}

// The suffixes of the notation: binary (Ki … Ei), decimal (k … E) and
// below one (n, u, m). Two-letter suffixes come first in every list that
// has them so that "Mi" is not read as "M" followed by junk.
var (
	// allSuffixes are those of the whole notation, for ParseQuantity.
	allSuffixes = []suffix{
		{"Ki", pow(2, 10)}, {"Mi", pow(2, 20)}, {"Gi", pow(2, 30)}, {"Ti", pow(2, 40)}, {"Pi", pow(2, 50)}, {"Ei", pow(2, 60)},
		{"n", big.NewRat(1, 1e9)}, {"u", big.NewRat(1, 1e6)}, {"m", big.NewRat(1, 1e3)},
		{"k", pow(10, 3)}, {"M", pow(10, 6)}, {"G", pow(10, 9)}, {"T", pow(10, 12)}, {"P", pow(10, 15)}, {"E", pow(10, 18)},
	}
	// cpuSuffixes are those ParseCPU accepts: millicores.
	cpuSuffixes = []suffix{{"m", big.NewRat(1, 1e3)}}
	// memorySuffixes are those ParseBytes accepts: binary and decimal up
	// to peta.
	memorySuffixes = []suffix{
		{"Ki", pow(2, 10)}, {"Mi", pow(2, 20)}, {"Gi", pow(2, 30)}, {"Ti", pow(2, 40)}, {"Pi", pow(2, 50)},
		{"k", pow(10, 3)}, {"M", pow(10, 6)}, {"G", pow(10, 9)}, {"T", pow(10, 12)}, {"P", pow(10, 15)},
	}
)

// pow returns base**exp as a big.Rat.
func pow(base, exp int64) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
}

// The reasons parse refuses a quantity; the exported parsers wrap them.
var (
	errEmpty     = errors.New("empty")
	errForm      = errors.New("want a number with an optional suffix (Ki, Mi, Gi, m, k, M, G, …)")
	errNotNumber = errors.New("not a number")
	errTooLarge  = errors.New("too large")
)

// ParseQuantity reads a Kubernetes resource quantity in the whole
// notation ("500m", "1.5", "4Gi", "1e3", "128M", "100u"; surrounding
// spaces allowed) and returns its value times scale, rounded up to an
// integer: scale 1 gives bytes for a memory quantity, 1e9 gives nano-CPUs
// for a CPU quantity. Zero is a quantity; a sign is not.
func ParseQuantity(q string, scale int64) (int64, error) {
	n, err := parse(strings.TrimSpace(q), scale, allSuffixes, true)
	if err != nil {
		return 0, fmt.Errorf("quantity %q: %w", q, err)
	}
	return n, nil
}

// ParseCPU returns a CPU quantity ("2", "0.5", "500m") in millicores: a
// positive number of cores or of millicores, at most a million cores, with
// no other suffix and no exponent.
func ParseCPU(s string) (int64, error) {
	milli, err := parse(s, 1000, cpuSuffixes, false)
	if err != nil || milli <= 0 || milli > 1e9 {
		return 0, fmt.Errorf("%q is not a CPU quantity such as 2, 0.5 or 500m", s)
	}
	return milli, nil
}

// ParseBytes returns a memory quantity ("512Mi", "4Gi", "1G", "1048576")
// in bytes: a positive number with at most a binary (Ki … Pi) or decimal
// (k … P) suffix, at most 4 EiB, and no exponent.
func ParseBytes(s string) (int64, error) {
	n, err := parse(s, 1, memorySuffixes, false)
	if err != nil || n <= 0 || n > 1<<62 {
		return 0, fmt.Errorf("%q is not a memory quantity such as 512Mi, 4Gi or 1G", s)
	}
	return n, nil
}

// parse reads q as a sign-less decimal number followed by at most one of
// sufs or, when exponent is set, by a decimal exponent ("1e3", "2E-2"),
// and returns its value times scale, rounded up to an integer.
func parse(q string, scale int64, sufs []suffix, exponent bool) (int64, error) {
	if q == "" {
		return 0, errEmpty
	}
	num, factor := q, big.NewRat(1, 1)
	for _, s := range sufs {
		if rest, ok := strings.CutSuffix(num, s.s); ok && isNumber(rest) {
			num, factor = rest, s.f
			break
		}
	}
	if !isNumber(num) {
		// A decimal exponent is the only other form.
		i := strings.IndexAny(num, "eE")
		if !exponent || i <= 0 || !isNumber(num[:i]) || !isExponent(num[i+1:]) {
			return 0, errForm
		}
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, errNotNumber
	}
	v.Mul(v, factor)
	v.Mul(v, big.NewRat(scale, 1))
	n := new(big.Int).Quo(v.Num(), v.Denom())
	if new(big.Rat).SetInt(n).Cmp(v) < 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() {
		return 0, errTooLarge
	}
	return n.Int64(), nil
}

// isNumber reports whether s is a non-empty run of digits with at most
// one decimal point and at least one digit.
func isNumber(s string) bool {
	digits, dots := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// isExponent reports whether s is an optionally signed run of at most
// three digits.
func isExponent(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	if s == "" || len(s) > 3 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// FormatCPU renders millicores the way people write them ("2", "500m").
func FormatCPU(milli int64) string {
	if milli%1000 == 0 {
		return strconv.FormatInt(milli/1000, 10)
	}
	return strconv.FormatInt(milli, 10) + "m"
}

// FormatBytes renders bytes in the largest binary suffix that divides
// them ("4Gi", "1536Mi", "1000").
func FormatBytes(n int64) string {
	for _, s := range []struct {
		suf string
		m   int64
	}{{"Pi", 1 << 50}, {"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n >= s.m && n%s.m == 0 {
			return strconv.FormatInt(n/s.m, 10) + s.suf
		}
	}
	return strconv.FormatInt(n, 10)
}
