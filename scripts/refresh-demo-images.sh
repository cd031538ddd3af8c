#!/usr/bin/env bash
# Refreshes the README's and docs' pictures of the demo models after a new release in checkpoints/:
# runs `npm start` (the offline demo, as a new user does), copies its grids to docs/images/demo-*.png,
# and renders the variation strengths of docs/bot.md. Look at every image before committing them.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf out/demo
start=$(date +%s)
npm start
echo "npm start took $(($(date +%s) - start)) s"
for name in generate blend blend-matrix finetune-preview; do
  cp "out/demo/$name.png" "docs/images/demo-$name.png"
done
node --import tsx scripts/variation-strengths.ts --out docs/images/demo-variations.png
ls -l docs/images/demo-*.png
