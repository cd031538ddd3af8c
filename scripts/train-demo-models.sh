#!/usr/bin/env bash
# Rebuilds the demo models in checkpoints/ from nothing but npm packages (facesjs, DiceBear):
#   1. render the datasets (procedural, seeded: the same images every time),
#   2. train the base "face" model from scratch,
#   3. fine-tune the lorelei style from it with snapshots by epoch,
#   4. copy the results into checkpoints/ in F16.
# Runs resume: run it again to continue training where it stopped (BASE_EPOCHS raises the target).
# On one CPU core (wasm) the base model trains at about 3-6 images/s at these sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_EPOCHS="${BASE_EPOCHS:-12}"     # epochs of 500 faces x 2 (mirrored) = 1 kimg each
BASE_WARMUP_EPOCHS=5                 # epochs before D is held back (R1 x8, fast ADA)
STYLE_EPOCHS="${STYLE_EPOCHS:-6}"    # epochs of 400 lorelei faces x 2 = 0.8 kimg each
export FACESTYLE_BACKEND="${FACESTYLE_BACKEND:-wasm}"
cli() { node bin/facestyle.js "$@"; }

node --import tsx -e "
  const { writeDemoDataset } = await import('./src/demo/data.ts');
  await writeDemoDataset('faces', 'data/demo/faces32-500', 500, 32);
  await writeDemoDataset('lorelei', 'data/demo/lorelei32', 400, 32);
"

base_run=(--data data/demo/faces32-500 --out runs/demo-faces --name demo-faces --snapshot-every 1
  --resolution 32 --channel-base 1024 --channel-max 128 --z-dim 64 --w-dim 64 --mapping-layers 2 --batch 16 --pl-weight 0)
# Without augmentation and with the auto R1 weight (0.0128 here), D won outright after about 5 kimg
# (D loss 0.02-0.3, G loss 3-6); the run resumes from epoch 5 with R1 x8 and an ADA fast enough to
# reach p = 1 in 10 kimg, which kept the losses even (D about 0.6). Both phases are what the
# committed base went through. G still came to lean on its noise inputs: see publish-demo-models.ts.
cli finetune "${base_run[@]}" --epochs "$BASE_WARMUP_EPOCHS" --aug noaug
cli finetune "${base_run[@]}" --epochs "$BASE_EPOCHS" --aug ada --ada-kimg 10 --gamma 0.1

base=$(ls runs/demo-faces/snapshot-epoch*.safetensors | sort | tail -n 1)
cli finetune --base "$base" --data data/demo/lorelei32 --out runs/demo-lorelei --name demo-lorelei \
  --epochs "$STYLE_EPOCHS" --snapshot-every 1 --batch 16 --freezed 1 --pl-weight 0 --ada-kimg 10

node --import tsx scripts/publish-demo-models.ts "$base" runs/demo-lorelei
