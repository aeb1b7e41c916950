# Shared by dev_sweep_128x16.sh and heldout_128x16.sh: `replay NAME POLICIES [POLICY.KEY=VALUE ...]`
# runs one resumable `parareason replay` of $TRACES rows $ROWS into $OUT/NAME (skipped once its
# summary.json exists; an interrupted one continues with --resume). The caller sets ROWS and OUT;
# TRACES defaults to the committed recording. Source it from the repository root.
set -u
TRACES=${TRACES:-benchmarks/traces/gsm8k128x16.jsonl.xz}
mkdir -p "$OUT"

replay() {
  local name=$1 policies=$2; shift 2
  local args=()
  for a in "$@"; do args+=(--policy-arg "$a"); done
  [ -f "$OUT/$name/summary.json" ] && return 0
  nice -n 19 .venv/bin/parareason replay "$TRACES" --rows "$ROWS" --policies "$policies" --seed 0 \
      "${args[@]}" --out-dir "$OUT/$name" --resume -q > "$OUT/$name.log" 2>&1 || echo "$name failed: $OUT/$name.log"
}
