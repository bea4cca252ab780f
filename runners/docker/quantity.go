package docker

import (
	"fmt"
	"math/big"
	"strings"
)

// suffixes are the Kubernetes quantity suffixes and the factor each
// stands for: binary (Ki … Ei) and decimal (n … E). Two-letter suffixes
// come first so that "Mi" is not read as "M" followed by junk.
var suffixes = []struct {
	s string
	f *big.Rat
}{
	{"Ki", pow(2, 10)}, {"Mi", pow(2, 20)}, {"Gi", pow(2, 30)}, {"Ti", pow(2, 40)}, {"Pi", pow(2, 50)}, {"Ei", pow(2, 60)},
	{"n", new(big.Rat).SetFrac64(1, 1e9)}, {"u", new(big.Rat).SetFrac64(1, 1e6)}, {"m", new(big.Rat).SetFrac64(1, 1e3)},
	{"k", pow(10, 3)}, {"M", pow(10, 6)}, {"G", pow(10, 9)}, {"T", pow(10, 12)}, {"P", pow(10, 15)}, {"E", pow(10, 18)},
}

func pow(base, exp int64) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
}

// parseQuantity reads a Kubernetes resource quantity ("500m", "1.5",
// "4Gi", "1e3", "128M") and returns its value times scale, rounded up to
// an integer: scale 1 gives bytes for a memory quantity, 1e9 gives
// nano-CPUs for a CPU quantity. It is a small parser of the notation
// (sign-less decimal number, optional decimal exponent or suffix), not
// k8s.io/apimachinery's, so that the runner needs no Kubernetes module.
func parseQuantity(q string, scale int64) (int64, error) {
	num, factor := strings.TrimSpace(q), big.NewRat(1, 1)
	if num == "" {
		return 0, fmt.Errorf("quantity %q: empty", q)
	}
	for _, s := range suffixes {
		if rest, ok := strings.CutSuffix(num, s.s); ok && rest != "" && isNumber(rest) {
			num, factor = rest, s.f
			break
		}
	}
	if !isNumber(num) {
		// A decimal exponent ("1e3", "2E6") is the only other form.
		i := strings.IndexAny(num, "eE")
		if i <= 0 || !isNumber(num[:i]) || !isExponent(num[i+1:]) {
			return 0, fmt.Errorf("quantity %q: want a number with an optional suffix (Ki, Mi, Gi, m, k, M, G, …)", q)
		}
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("quantity %q: not a number", q)
	}
	v.Mul(v, factor)
	v.Mul(v, big.NewRat(scale, 1))
	// Round up: a limit of 0.5 bytes is 1 byte, not none.
	n := new(big.Int).Quo(v.Num(), v.Denom())
	if new(big.Rat).SetInt(n).Cmp(v) < 0 {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("quantity %q: too large", q)
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

// isExponent reports whether s is an optionally signed run of digits.
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
