package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A small parser of the Kubernetes quantity notation, for the CPU, memory
// and shm sizes of .mlbot.yml and the operator's limits. It accepts the
// forms people write ("2", "0.5", "500m"; "512Mi", "4Gi", "1G", "1000000")
// and refuses the rest with a message; it is not the whole of
// k8s.io/apimachinery's resource.Quantity (no exponents), which keeps
// configs free of the Kubernetes modules.

// binarySuffixes and decimalSuffixes map memory suffixes to multipliers.
var (
	binarySuffixes  = map[string]float64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50}
	decimalSuffixes = map[string]float64{"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
)

// ParseCPU returns a CPU quantity ("2", "0.5", "500m") in millicores.
func ParseCPU(s string) (int64, error) {
	num, mult := s, 1000.0
	if v, ok := strings.CutSuffix(s, "m"); ok {
		num, mult = v, 1
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eE+") || f <= 0 || math.IsInf(f, 0) || f*mult > 1e9 {
		return 0, fmt.Errorf("%q is not a CPU quantity such as 2, 0.5 or 500m", s)
	}
	milli := int64(math.Ceil(f * mult))
	return milli, nil
}

// ParseBytes returns a memory quantity ("512Mi", "4Gi", "1G", "1048576")
// in bytes.
func ParseBytes(s string) (int64, error) {
	num, mult := s, 1.0
	for suf, m := range binarySuffixes {
		if v, ok := strings.CutSuffix(s, suf); ok {
			num, mult = v, m
		}
	}
	if mult == 1 {
		for suf, m := range decimalSuffixes {
			if v, ok := strings.CutSuffix(s, suf); ok {
				num, mult = v, m
			}
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eE+") || f <= 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a memory quantity such as 512Mi, 4Gi or 1G", s)
	}
	return int64(math.Ceil(f * mult)), nil
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
