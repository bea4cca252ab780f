// Package examples holds the example ML projects that mlbot ships.
//
// Digits is the digits/ folder: a softmax-regression classifier of the 8×8
// handwritten digits data set (examples/digits/softmax.go, standard library
// only), its data (digits.csv.gz, BSD-3-Clause via scikit-learn; see
// DATA-LICENSE.md), and the .mlbot.yml that trains and evaluates it. The
// `mlbot demo` command writes it into a temporary git repository; paths in
// the FS start with "digits/", e.g. "digits/.mlbot.yml".
package examples

import "embed"

// Digits is the digits example, dot files included (the "all:" prefix keeps
// .mlbot.yml and .gitignore).
//
//go:embed all:digits
var Digits embed.FS
