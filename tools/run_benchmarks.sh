#!/usr/bin/env bash
# Every measurement of docs/benchmarks.md, one command each. Run it after
# `make demo-full` (which trains the synthetic models this uses), on a quiet
# machine:
#   bash tools/run_benchmarks.sh [OUT_DIR]        (or `make benchmarks`)
# Each tool's JSON goes to OUT_DIR/<name>.json and the table it renders
# (with the command) to OUT_DIR/<name>.md; the sweep's CSV and plot and the visualisations go
# to OUT_DIR/sweep_synthetic/ and OUT_DIR/vis/.
# With a GPU, DEVICE=cuda runs the latency benchmarks on it instead
# (batch 1 and 16). SKIP_SWIN_T=1 leaves out the (slow) Swin-T 512 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-work_dirs/benchmarks}"
PY="${PYTHON:-.venv/bin/python}"
DEVICE="${DEVICE:-cpu}"
SYN=configs/adamtl_swin_synthetic.py
SYN_CKPT=work_dirs/demo/adamtl/iter_500.pth
SYN_STATIC=configs/static_swin_synthetic.py
SYN_STATIC_CKPT=work_dirs/demo/static/iter_800.pth
SWIN_T=configs/adamtl_swin_pascal.py
mkdir -p "$OUT"
for f in "$SYN_CKPT" "$SYN_STATIC_CKPT"; do
    [ -f "$f" ] || { echo "$f is missing: run make demo-full first" >&2; exit 1; }
done

run() {  # run NAME TOOL ARGS...: JSON to NAME.json, its table to NAME.md
    local name=$1 tool=$2; shift 2
    echo "+ python $tool $* --json" | tee "$OUT/$name.md"
    "$PY" "$tool" "$@" --json > "$OUT/$name.json"
    "$PY" -c "import json, runpy, sys; print(runpy.run_path(sys.argv[1])[
        'render'](json.load(open(sys.argv[2]))))" "$tool" "$OUT/$name.json" \
        | tee -a "$OUT/$name.md"
}

if [ "$DEVICE" = cuda ]; then
    BATCHES="1 16"
else
    BATCHES="1 8"
fi
# MTLoRA (its demo's r=8 model): static / unmerged / merged latency and
# GFLOPs, with task streams and with TA-LoRA alone; Swin-T at the paper's
# 448x448. `ONLY=mtlora bash tools/run_benchmarks.sh DIR` runs just these.
MTL=configs/mtlora_swin_synthetic.py
MTL_CKPT=work_dirs/demo/mtlora_r8/iter_400.pth
mtlora_benchmarks() {
    [ -f "$MTL_CKPT" ] || { echo "$MTL_CKPT is missing: run make demo-full" >&2
                            exit 1; }
    run flops_mtlora_synthetic tools/get_flops.py $MTL \
        --checkpoint $MTL_CKPT --num-images 20
    for B in $BATCHES; do
        run "bench_mtlora_synthetic_${DEVICE}_b$B" tools/benchmark.py $MTL \
            --checkpoint $MTL_CKPT --batch-size "$B" --device "$DEVICE" \
            --rounds 15
        # TA-LoRA alone (no task streams; fresh adapters): merged, it is
        # the static model.
        run "bench_mtlora_ta_only_synthetic_${DEVICE}_b$B" \
            tools/benchmark.py $MTL --batch-size "$B" --device "$DEVICE" \
            --rounds 15 --cfg-options 'model.backbone.lora.task_targets=[]'
    done
    [ -n "${SKIP_SWIN_T:-}" ] && return
    run flops_mtlora_swin_t_448 tools/get_flops.py \
        configs/mtlora_swin_pascal.py --num-images 0
    run "bench_mtlora_swin_t_448_${DEVICE}_b1" tools/benchmark.py \
        configs/mtlora_swin_pascal.py --batch-size 1 --device "$DEVICE" \
        --random-inputs --rounds 3
}
# AdaMTL's latency on the synthetic demo model (15 rounds: one round of
# this small model takes well under a second, and machine noise is a few
# percent per round), where its time goes, and how often it waits for
# the device. `ONLY=latency bash tools/run_benchmarks.sh DIR` runs just
# these.
latency_benchmarks() {
    for B in $BATCHES; do
        run "bench_synthetic_${DEVICE}_b$B" tools/benchmark.py $SYN \
            --checkpoint $SYN_CKPT --budget 0.5 --batch-size "$B" \
            --device "$DEVICE" --rounds 15
        run "syncs_synthetic_${DEVICE}_b$B" tools/count_syncs.py $SYN \
            --checkpoint $SYN_CKPT --budget 0.5 --batch-size "$B" \
            --device "$DEVICE"
    done
    # At 0.75 the adaptive model must not be slower than the static one.
    run "bench_synthetic_${DEVICE}_b1_budget075" tools/benchmark.py $SYN \
        --checkpoint $SYN_CKPT --budget 0.75 --batch-size 1 \
        --device "$DEVICE" --rounds 15 --skip-train
    run breakdown_synthetic tools/encoder_breakdown.py $SYN \
        --checkpoint $SYN_CKPT
    run breakdown_synthetic_adaptive tools/encoder_breakdown.py $SYN \
        --checkpoint $SYN_CKPT --budget 0.5
    # The floor: the adaptive encoder next to a replay of its own work
    # without policy or host reads (on CUDA also both in CUDA graphs).
    local graphs=()
    [ "$DEVICE" = cuda ] && graphs=(--cuda-graphs)
    for B in $BATCHES; do
        run "floor_synthetic_${DEVICE}_b$B" tools/encoder_breakdown.py \
            $SYN --checkpoint $SYN_CKPT --budget 0.5 --floor \
            --batch-size "$B" --images $((B == 1 ? 8 : 2 * B)) \
            --device "$DEVICE" --repeats 30 "${graphs[@]}"
    done
}
# Captured mode: the adaptive model captured (test_cfg.captured) against
# the static model compiled whole, same weights, batch 1: the synthetic
# demo model at 0.75, Swin-T 512 (calibrated, noise images) at 0.25 and
# 0.5. `ONLY=captured bash tools/run_benchmarks.sh DIR` runs just these.
captured_benchmarks() {
    run "captured_synthetic_${DEVICE}_b1_budget075" tools/benchmark.py \
        $SYN --checkpoint $SYN_CKPT --budget 0.75 --device "$DEVICE" \
        --captured --rounds 15
    [ -n "${SKIP_SWIN_T:-}" ] && return
    for b in 0.25 0.5; do
        run "captured_swin_t_512_${DEVICE}_b1_budget${b/./}" \
            tools/benchmark.py $SWIN_T --budget $b --device "$DEVICE" \
            --random-inputs --calibrate --captured --num-images 4 \
            --rounds 5
    done
}
case "${ONLY:-}" in
    mtlora) mtlora_benchmarks; echo "wrote $OUT"; exit 0 ;;
    latency) latency_benchmarks; echo "wrote $OUT"; exit 0 ;;
    captured) captured_benchmarks; echo "wrote $OUT"; exit 0 ;;
esac

run flops_synthetic tools/get_flops.py $SYN --checkpoint $SYN_CKPT \
    --budget 0.5 --num-images 100
[ -n "${SKIP_SWIN_T:-}" ] || \
    run flops_swin_t_512 tools/get_flops.py $SWIN_T --num-images 0

latency_benchmarks
for B in $BATCHES; do
    [ -n "${SKIP_SWIN_T:-}" ] && continue
    # Swin-T at 512x512: no trained policy here, so the policy is
    # calibrated to the budget on the benchmark's (noise) inputs.
    TRAIN_ARGS=(--train-batch-size 2)
    [ "$B" = 1 ] && TRAIN_ARGS=(--skip-train)
    run "bench_swin_t_512_${DEVICE}_b$B" tools/benchmark.py $SWIN_T \
        --budget 0.5 --batch-size "$B" --device "$DEVICE" --random-inputs \
        --calibrate --rounds 3 "${TRAIN_ARGS[@]}"
done

# Where the static encoder's time goes, next to its FLOPs.
[ -n "${SKIP_SWIN_T:-}" ] || \
    run breakdown_swin_t_512 tools/encoder_breakdown.py $SWIN_T

run sweep_synthetic tools/sweep_budget.py $SYN --checkpoint $SYN_CKPT \
    --budgets 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0 \
    --static-config $SYN_STATIC --static-checkpoint $SYN_STATIC_CKPT \
    --out-dir "$OUT/sweep_synthetic" --overwrite
run vis_synthetic tools/visualize.py $SYN --checkpoint $SYN_CKPT \
    --budget 0.5 --images val_00000 val_00001 val_00002 --out "$OUT/vis" \
    --overwrite
captured_benchmarks
mtlora_benchmarks
echo "wrote $OUT"
