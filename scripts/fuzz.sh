#!/usr/bin/env bash
# fuzz.sh runs every go test -fuzz target of mlbot for a given time, one
# after another, and prints per target the executions, the new interesting
# inputs (inputs that reached new coverage) and the crasher found, if any.
# It is not part of .ci/run: a CI run replays the seed corpora and the
# committed crashers under testdata/fuzz/ as ordinary tests instead.
#
# Usage: scripts/fuzz.sh [-p N] [-m TIME] [-o DIR] [DURATION] [TARGET...]
#   DURATION  fuzzing time per target, as go test -fuzztime takes it (10m, 30s, 100000x); default 10m
#   TARGET    FuzzName or package:FuzzName to run only some targets; default all
#   -p N      fuzzing workers per target (go test -parallel); default 1
#   -m TIME   how long to minimize each new input (go test -fuzzminimizetime); default 10s.
#             Go's default, 60s, spent most of a 10-minute run on the 28 kB webhook payloads
#   -o DIR    where the logs go; default a new temporary directory
#
# A target that finds a crasher stops there (go test -fuzz stops at the first
# failure): the input is written to the package's testdata/fuzz/FuzzName/,
# where go test replays it from then on. Fix the bug, commit the input as a
# regression test, and run the target again. The exit status is 1 when any
# target found a crasher or failed to build.
set -euo pipefail

parallel=1
minimize=10s
logdir=""
while getopts "p:m:o:h" opt; do
	case $opt in
	p) parallel=$OPTARG ;;
	m) minimize=$OPTARG ;;
	o) logdir=$OPTARG ;;
	*) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
duration=${1:-10m}
[[ $# -gt 0 ]] && shift

cd "$(dirname "$0")/.."

# package:FuzzName, cheapest build first.
targets=(
	./jobs/report:FuzzFlatten
	./configs:FuzzParseRepoConfig
	./bot/github:FuzzParse
	./bot/gitlab:FuzzParse
	./jobs:FuzzParseCommands
)
# The sweep search-space parser, where that package exists.
if grep -qs '^func FuzzParseSpace(' jobs/sweep/*_test.go; then
	targets+=(./jobs/sweep:FuzzParseSpace)
fi

if [[ $# -gt 0 ]]; then
	chosen=()
	for want in "$@"; do
		found=""
		for t in "${targets[@]}"; do
			if [[ $t == "$want" || ${t#*:} == "$want" || $t == "./$want" ]]; then
				chosen+=("$t")
				found=1
			fi
		done
		[[ -n $found ]] || { echo "fuzz.sh: no target $want" >&2; exit 2; }
	done
	targets=("${chosen[@]}")
fi

# go test's -timeout (10m by default) also bounds a fuzzing run: give it the
# fuzzing time plus 30 minutes for building and the baseline, so that an
# input that makes a target hang still ends the run with a stack dump.
timeout=0
if [[ $duration =~ ^([0-9]+)(s|m|h)$ ]]; then
	n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in s) ;; m) n=$((n * 60)) ;; h) n=$((n * 3600)) ;; esac
	timeout=$((n + 1800))s
fi

logdir=${logdir:-$(mktemp -d "${TMPDIR:-/tmp}/mlbot-fuzz.XXXXXX")}
mkdir -p "$logdir"
echo "fuzzing ${#targets[@]} targets for $duration each, -parallel=$parallel, -fuzzminimizetime=$minimize; logs in $logdir"

status=0
summary=()
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t#*:}
	log="$logdir/$(echo "$pkg" | tr -c 'a-zA-Z0-9\n' _)_$name.log"
	echo "== $pkg $name"
	start=$(date +%s)
	rc=0
	go test -run='^$' -fuzz="^$name\$" -fuzztime="$duration" -parallel="$parallel" -fuzzminimizetime="$minimize" -timeout="$timeout" "$pkg" >"$log" 2>&1 || rc=$?
	secs=$(($(date +%s) - start))
	# The last progress line carries the run's totals:
	# "fuzz: elapsed: 10m0s, execs: 1234567 (2057/sec), new interesting: 12 (total: 57)"
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	corpus=$(sed -nE 's/.*\(total: ([0-9]+)\).*/\1/p' <<<"$last")
	elapsed=$(sed -nE 's/^fuzz: elapsed: ([^,]+),.*/\1/p' <<<"$last")
	crasher=$(sed -nE 's/.*Failing input written to (.*)$/\1/p' "$log" | tail -n 1)
	result="ok"
	if [[ -n $crasher ]]; then
		result="CRASHER $pkg/$crasher"
		status=1
	elif [[ $rc -ne 0 ]]; then
		result="FAILED (exit $rc, see $log)"
		status=1
	fi
	line=$(printf '%-22s %-22s fuzzed %-8s execs %-11s new interesting %-5s corpus %-6s %s' \
		"$pkg" "$name" "${elapsed:-0s}" "${execs:-0}" "${newi:-0}" "${corpus:-?}" "$result")
	echo "$line  (wall ${secs}s)"
	summary+=("$line")
done

echo
echo "== summary ($duration per target, -parallel=$parallel)"
printf '%s\n' "${summary[@]}"
exit $status
