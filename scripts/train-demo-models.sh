#!/usr/bin/env bash
# Rebuilds the demo models in checkpoints/ from nothing but npm packages (facesjs, DiceBear), to
# the recipe of docs/demo-models.md ("The 64x64 recipe"):
#   1. render the datasets (`facestyle demo data`: procedural, seeded, the same bytes every time),
#   2. train the base `demo-faces` from scratch at 64x64 on 10,000 facesjs people, mirrored,
#   3. fine-tune the style (lorelei) from the final base, snapshots on an epoch ladder,
#   4. publish the final base (G_ema + G + D) and the ladder snapshots (G_ema) into checkpoints/
#      in F16, noise inputs as trained.
# It takes about a day on one CPU core (wasm, one thread), so it is built to run in pieces. It
# resumes: run it again after a stop (Ctrl-C, a reboot, a killed session) and it continues from
# the newest snapshot under runs/. On a new machine, where runs/ is gone, it continues the base
# from the published demo-faces in checkpoints/ when that is an interim release of this recipe
# (it has G, D and G_ema as trained; Adam's moments and ADA's p start again). BASE_EPOCHS_PER_RUN
# makes such interim releases: train that many base epochs, fine-tune the style from there,
# publish both, and let the next run go on. Everything it writes before publishing is under data/
# and runs/ (both gitignored).
#
# Environment (defaults are the recipe; the small values in the comments are the smoke test):
#   FACES=10000 STYLE_IMAGES=400      images in the sets (smoke: 64 and 16)
#   BASE_EPOCHS=10                    epochs of FACES x 2 mirrored images (10 = 200 kimg)
#   BASE_EPOCHS_PER_RUN=              at most this many base epochs now, then an interim release
#   BASE_SNAPSHOT_EVERY=1             epochs between base snapshots = resume points
#   STYLE_LADDER=4,8,12,27,80         style snapshot epochs (published), the report's 24, 48, 72,
#                                     160, 480 over 6; the last is the run's length (64 kimg)
#   STYLE_SNAPSHOT_EVERY=10           further style snapshots, resume points only
#   RUNS=runs/demo64 DATA=data/demo64 where the runs and the sets go
#   PUBLISH=checkpoints               where the published files go (smoke: somewhere else)
#   STYLE=lorelei                     the DiceBear style of the style set
#   SEED=0                            seed of the sets and of the runs
set -euo pipefail
cd "$(dirname "$0")/.."
RES=64
FACES="${FACES:-10000}"
STYLE="${STYLE:-lorelei}"
STYLE_IMAGES="${STYLE_IMAGES:-400}"
BASE_EPOCHS="${BASE_EPOCHS:-10}"
BASE_EPOCHS_PER_RUN="${BASE_EPOCHS_PER_RUN:-}"
BASE_SNAPSHOT_EVERY="${BASE_SNAPSHOT_EVERY:-1}"
STYLE_LADDER="${STYLE_LADDER:-4,8,12,27,80}"
STYLE_SNAPSHOT_EVERY="${STYLE_SNAPSHOT_EVERY:-10}"
RUNS="${RUNS:-runs/demo64}"
DATA="${DATA:-data/demo64}"
PUBLISH="${PUBLISH:-checkpoints}"
SEED="${SEED:-0}"
export FACESTYLE_BACKEND="${FACESTYLE_BACKEND:-wasm}"
STYLE_EPOCHS="${STYLE_LADDER##*,}"
cli() { node bin/facestyle.js "$@"; }
say() { printf '\n== %s (%s)\n' "$1" "$(date -u +%FT%TZ)"; }

# 1. Datasets. LICENSE.txt is written last and names the exact command: a set is complete and
# current when it is there and matches; otherwise it is rendered again from scratch.
render() { # set count dir
  local expected="--set $1 --seed $SEED --count $2 --res $RES"
  if grep -qF -- "$expected" "$3/LICENSE.txt" 2>/dev/null; then
    echo "$3: already rendered ($expected)"
  else
    rm -rf "$3"
    cli demo data --out "$3" $expected
  fi
}
faces_dir="$DATA/faces-$FACES-seed$SEED"
style_dir="$DATA/$STYLE-$STYLE_IMAGES-seed$SEED"
say "datasets"
render faces "$FACES" "$faces_dir"
render "$STYLE" "$STYLE_IMAGES" "$style_dir"

# 2. The base, from scratch or continued. 64x64 with 128 channels up to 8x8, 64 at 16x16, 32 at
# 32x32 and 16 at 64x64 (cbase 1024, cmax 128), z and w 128, 2 mapping layers: 1.6x faster than
# cbase 2048 (32 channels at 64x64) on one wasm thread, measured (docs/demo-models.md), flat
# cartoon colours need little at the top. R1 gamma 0.1 is twice the auto rule's 0.0512
# (0.0002 x 64^2 / 16): the 32x32 run's D won at the auto value. ADA reacts within 100 kimg when
# D starts to over-fit 10,000 images; on a set this size it may stay near 0.
# Path-length regularisation is off (as in NVIDIA's cifar config): it costs an extra G pass.
# The minibatch of 16 runs as two rounds of 8 (--batch-gpu 8), side by side on two cores where
# there are two (finetune --threads auto; 1.4x a step on this 2-vCPU machine, docs/benchmarks.md),
# one after the other where there is one: the same training either way.
#
# Where the base starts is decided once per run folder and written to its START file: from scratch,
# or from the interim release in $PUBLISH (copied into the run folder, as publishing replaces it).
# The epochs below count from that start; the published files carry the recipe's running total.
base_run="$RUNS/faces"
recipe_epochs() { # checkpoint -> base epochs of this recipe it holds (0: none, or another recipe)
  node --import tsx -e "
    const { readCheckpointInfo } = await import('./src/model/checkpoint/info.ts');
    const info = await readCheckpointInfo(process.argv[1]).catch(() => null);
    const recipe = info?.meta.extra?.recipe;
    const ours = recipe?.name === 'demo$RES' && recipe?.faces === $FACES && recipe?.seed === $SEED;
    console.log(ours && info.networks.includes('D') ? recipe.epochs : 0);" "$1"
}
mkdir -p "$base_run"
if [ ! -f "$base_run/START" ]; then
  if compgen -G "$base_run/snapshot-epoch*.safetensors" > /dev/null; then
    echo scratch > "$base_run/START" # a run folder from before START files: it began from scratch
  elif [ "$(recipe_epochs "$PUBLISH/demo-faces.safetensors")" -gt 0 ]; then
    cp "$PUBLISH/demo-faces.safetensors" "$base_run/start.safetensors"
    echo "$base_run/start.safetensors" > "$base_run/START"
  else
    echo scratch > "$base_run/START"
  fi
fi
start=$(cat "$base_run/START")
if [ "$start" = scratch ]; then
  done_before=0
  from=(--resolution "$RES" --channel-base 1024 --channel-max 128 --z-dim 128 --w-dim 128 --mapping-layers 2 --mbstd 4)
else
  done_before=$(recipe_epochs "$start")
  from=(--base "$start")
fi
epochs_left=$((BASE_EPOCHS - done_before))
[ "$epochs_left" -ge 1 ] || { echo "$start already holds $done_before of $BASE_EPOCHS base epochs" >&2; exit 1; }
run_epochs=$epochs_left
if [ -n "$BASE_EPOCHS_PER_RUN" ] && [ "$BASE_EPOCHS_PER_RUN" -lt "$epochs_left" ]; then
  run_epochs=$BASE_EPOCHS_PER_RUN
fi
say "base demo-faces from $start (base epochs done: $done_before of $BASE_EPOCHS), training $run_epochs now; an epoch is $FACES x 2 images"
cli finetune --data "$faces_dir" --out "$base_run" --name demo-faces "${from[@]}" \
  --batch 16 --batch-gpu 8 --gamma 0.1 --pl-weight 0 --aug ada --ada-kimg 100 --seed "$SEED" \
  --epochs "$run_epochs" --snapshot-every "$BASE_SNAPSHOT_EVERY"
base=$(printf '%s/snapshot-epoch%05d.safetensors' "$base_run" "$run_epochs")
[ -f "$base" ] || { echo "the base run stopped before epoch $run_epochs ($base missing)" >&2; exit 1; }

# 3. The style, from the base reached (the final one, or an interim one). The style run
# remembers its base: a longer base run later must not continue a style run that started from an
# earlier base.
say "style demo-$STYLE from $base, ladder $STYLE_LADDER"
style_run="$RUNS/$STYLE"
mkdir -p "$style_run"
if [ -f "$style_run/BASE" ] && [ "$(cat "$style_run/BASE")" != "$base" ]; then
  echo "$style_run was fine-tuned from $(cat "$style_run/BASE"), not $base: move it away to start over" >&2
  exit 1
fi
echo "$base" > "$style_run/BASE"
# FreezeD 1 (the 64x64 D block stays the base's), ADA fast enough for 800 images: the recipe of
# the report's transfer runs, scaled; the late ladder snapshots are meant to over-fit.
cli finetune --base "$base" --data "$style_dir" --out "$style_run" --name "demo-$STYLE" \
  --batch 16 --batch-gpu 8 --gamma 0.1 --pl-weight 0 --freezed 1 --aug ada --ada-kimg 20 --seed "$SEED" \
  --epochs "$STYLE_EPOCHS" --snapshot-every "$STYLE_SNAPSHOT_EVERY" --snapshot-epochs "$STYLE_LADDER"

# 4. Publish. The first (32x32) demo models are kept under runs/ for the old-vs-new scores.
say "publish into $PUBLISH"
if [ "$PUBLISH" = checkpoints ] && [ ! -d "$RUNS/old-checkpoints" ]; then
  mkdir -p "$RUNS/old-checkpoints"
  cp checkpoints/demo-*.safetensors "$RUNS/old-checkpoints/"
fi
recipe="demo$RES,faces=$FACES,seed=$SEED,target=$BASE_EPOCHS"
node --import tsx scripts/publish-demo-models.ts "$base" "$style_run" \
  --epochs "$STYLE_LADDER" --style "demo-$STYLE" --out "$PUBLISH" --recipe "$recipe" \
  --base-data "$faces_dir" --style-data "$style_dir" \
  $([ "$start" = scratch ] || echo --continues "$start")
du -ch "$PUBLISH"/demo-*.safetensors | tail -n 1
