#!/usr/bin/env bash
# fuzz.sh FUZZTIME: runs every fuzz target (func FuzzX in a _test.go file) in
# turn for FUZZTIME each. A failing input is written to the package's
# testdata/fuzz/FuzzX/; keep it there once fixed. Minimizing is capped so
# that a short run is spent fuzzing.
#
# Go 1.26's fuzz coordinator can end a run that found nothing with
# "context deadline exceeded" (golang/go#75804, fixed in Go 1.27): the
# -fuzztime deadline races a worker still executing an input. Such a run
# wrote no failing input, so it is reported and not counted as a failure;
# any other failure, or any new file under testdata/fuzz/FuzzX/, fails.
set -uo pipefail
fuzztime=${1:?usage: fuzz.sh FUZZTIME}
go=${GO:-go}
failed=0
for f in $(grep -rl --include='*_test.go' '^func Fuzz' cmd cluster fsm gossip ops runner scheduler sshproxy | sort); do
	dir=$(dirname "$f")
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "== $name in ./$dir for $fuzztime"
		corpus="$dir/testdata/fuzz/$name"
		before=$(ls "$corpus" 2>/dev/null | sort)
		out=$(mktemp)
		"$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "./$dir" 2>&1 | tee "$out"
		rc=${PIPESTATUS[0]}
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [ "$rc" -ne 0 ]; then
			if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" \
				&& [ "$(grep -c '^--- FAIL' "$out")" -eq 1 ] && ! grep -q 'Failing input written' "$out"; then
				echo "== $name: the fuzzer stopped with golang/go#75804 (deadline race, no failing input written): not a failure"
			else
				echo "== $name FAILED"
				failed=1
			fi
		fi
		rm -f "$out"
	done
done
exit $failed
