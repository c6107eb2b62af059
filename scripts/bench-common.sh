# Helpers shared by the side-by-side benchmark scripts (sourced, not run).

# median: the median of the numbers on standard input (separated by spaces or lines).
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# throughput PROGRAM ARGS...: runs it and prints its "Throughput: X events/s" figure; on failure
# prints its output and stops the script (messages name $BENCH, the calling script).
throughput() {
  local out
  out="$("$@" 2>&1)" || { echo "$out" >&2; echo "${BENCH:-bench}: $1 failed" >&2; exit 1; }
  echo "$out" | sed -n 's/^Throughput: \([0-9.e+]*\) events\/s.*/\1/p' | head -1
}

# ratio A B: A / B with two decimals ("n/a" unless both are positive).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
