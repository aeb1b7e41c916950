#!/bin/bash
# Dev-half (rows 0-63) replays of the 128x16 recording, one output folder per setting under
# runs/dev/ (BENCHMARKS.md, "Dev half of the 128x16 recording"). Resumable: a finished setting is
# skipped, an interrupted one continues (--resume). Run from the repository root; to use both cores,
# run it twice at once, once with SKIP_DP=1 and once with ONLY_DP=1.
ROWS=${ROWS:-0:64}
OUT=${OUT:-runs/dev}
. benchmarks/replay_settings.sh

if [ -z "${ONLY_DP:-}" ]; then
replay base sc,deepconf,deepconf_low,deepconf_high,ffs,bom,rpc
replay ffs_strict ffs ffs.strict=true
replay rpc_online rpc rpc.pruning=online
replay rpc_none rpc rpc.pruning=none
replay dc_cpu deepconf deepconf.preset=cpu
# With the paper's window (2048) a <=512-token trace is one group, so every measure is the
# trace's mean confidence; the measures only differ with a window shorter than the traces (64).
for m in lowest bottom10 tail mean; do for k in 10 90; do
  replay "dc_off_${m}_${k}" deepconf deepconf.mode=offline deepconf.measure=$m deepconf.keep_percent=$k
  replay "dc_off_${m}_${k}_w64" deepconf deepconf.mode=offline deepconf.measure=$m deepconf.keep_percent=$k deepconf.window=64
done; done
for w in 4 8; do for c in 0.95 0.8; do
  replay "dc_on_w${w}_c${c}_f0" deepconf deepconf.warmup=$w deepconf.consensus=$c deepconf.in_flight=0
done; done
fi
[ -n "${SKIP_DP:-}" ] && exit 0
replay dp_default deepprune
replay dp_t05 deepprune deepprune.threshold=0.5
replay dp_t03 deepprune deepprune.threshold=0.3
replay dp_c64_t05 deepprune deepprune.check_every=64 deepprune.threshold=0.5
replay dp_w8_t05 deepprune deepprune.width=8 deepprune.threshold=0.5
