#!/usr/bin/env bash
# The nightly job's last step: every cell's gate run compared with the baseline cell's
# (`harness diff`), written to the step summary. Usage: ci-compare.sh CELLS_DIR BASELINE_NAME
# where CELLS_DIR/reports-<name>/ holds each cell's reports/. Exit 0: it reports, the cells
# themselves already passed or failed their gate.
set -uo pipefail
cells=$1
baseline=$2
HARNESS=${HARNESS:-.venv/bin/harness}
summary=${GITHUB_STEP_SUMMARY:-/dev/stdout}

gate_run() {  # the first run of the gate in a cell's reports (the directory holding gate.md)
  find "$1" -name gate.md -printf '%h\n' 2>/dev/null | sort | tail -1
}

base=$(gate_run "$cells/reports-$baseline")
{
  echo "# nightly: every cell against $baseline"
  echo
  echo "| cell | gate | diff against the baseline |"
  echo "|---|---|---|"
} >> "$summary"
if [ -z "$base" ]; then
  echo "| $baseline | no gate run found | - |" >> "$summary"
  exit 0
fi
for dir in "$cells"/reports-*; do
  name=${dir#"$cells"/reports-}
  run=$(gate_run "$dir")
  if [ -z "$run" ]; then
    echo "| $name | no gate run (the cell broke before its gate wrote gate.md) | - |" >> "$summary"
    continue
  fi
  verdict=$(head -1 "$run/gate.md" | sed 's/^# nats-chaos gate //')
  if [ "$name" = "$baseline" ]; then
    echo "| $name | $verdict | (baseline) |" >> "$summary"
    continue
  fi
  GITHUB_STEP_SUMMARY= "$HARNESS" diff "$base" "$run" --out "$dir/diff.md" > /dev/null
  status=$?
  case $status in 0) d="no regression";; 1) d="regressed";; *) d="diff failed (exit $status)";; esac
  echo "| $name | $verdict | $d |" >> "$summary"
done
for dir in "$cells"/reports-*; do
  if [ -f "$dir/diff.md" ]; then
    { echo; echo "<details><summary>${dir#"$cells"/reports-}</summary>"; echo; cat "$dir/diff.md"; echo "</details>"; } >> "$summary"
  fi
done
