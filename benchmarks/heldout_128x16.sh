#!/bin/bash
# Held-out half (rows 64-127) of the 128x16 recording: every policy against SC@16 with the
# settings chosen on rows 0-63 (benchmarks/dev_sweep_128x16.sh; BENCHMARKS.md, "Held-out half").
# Each run has sc first, so every policy gets its paired CI against SC@16 on the same questions.
# Resumable like the dev sweep. Run from the repository root.
ROWS=${ROWS:-64:128}
OUT=${OUT:-runs/heldout}
. benchmarks/replay_settings.sh

if [ -z "${ONLY_DP:-}" ]; then
replay base sc,deepconf,deepconf_low,deepconf_high,ffs,bom,rpc
replay ffs_strict sc,ffs ffs.strict=true
replay dc_cpu sc,deepconf deepconf.preset=cpu
replay dc_low_w64 sc,deepconf deepconf.mode=offline deepconf.measure=lowest deepconf.keep_percent=10 deepconf.window=64
fi
[ -n "${SKIP_DP:-}" ] && exit 0
replay dp_w8_t05 sc,deepprune deepprune.width=8 deepprune.threshold=0.5
replay dp_t05 sc,deepprune deepprune.threshold=0.5
replay dp_default sc,deepprune
