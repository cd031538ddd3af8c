#!/usr/bin/env bash
# GPU numbers for issue #14 in one call of the device tool (see docs/benchmarks.md, "GPU runs").
#
#   bash scripts/gpu-bench.sh pack      # here: writes .device/gpu-bench/pack.tar.xz (git-ignored)
#   # then, through the device tool: run with carry [".device/gpu-bench"] and the command
#   bash scripts/gpu-bench.sh run [generate|train|all]
#
# The pack holds node (the one running `pack`), an esbuild bundle of scripts/gpu-bench-entry.ts,
# Dawn (webgpu's dawn.node), sharp with libvips (training previews import it), tfjs's wasm
# binaries and the Vulkan loader (libvulkan1, when apt can fetch it here): everything the device
# machine lacks. `run` writes its tables and the GPU memory samples to $OUT (or ./bench-results).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.device/gpu-bench"

pack() {
  local stage
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  mkdir -p "$stage/bin" "$stage/node_modules" "$stage/debs" "$dest"
  cp "$(command -v node)" "$stage/bin/node"
  # CommonJS parts of the bundle (tfjs's wasm loader) expect require, __filename and __dirname.
  local banner="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);"
  "$root/node_modules/.bin/esbuild" "$root/scripts/gpu-bench-entry.ts" --bundle --platform=node \
    --format=esm --target=node20 --outfile="$stage/bench.mjs" --ignore-annotations --log-level=error \
    --external:webgpu --external:sharp --external:onnxruntime-node \
    --banner:js="$banner"
  local nm="$root/node_modules"
  mkdir -p "$stage/node_modules/webgpu/dist/linux-x64" "$stage/node_modules/@tensorflow/tfjs-backend-wasm/dist" \
    "$stage/node_modules/@img"
  cp "$nm/webgpu/index.js" "$nm/webgpu/package.json" "$stage/node_modules/webgpu/"
  cp "$nm/webgpu/dist/linux-x64/dawn.node" "$stage/node_modules/webgpu/dist/linux-x64/"
  cp "$nm/@tensorflow/tfjs-backend-wasm/package.json" "$stage/node_modules/@tensorflow/tfjs-backend-wasm/"
  cp "$nm"/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$stage/node_modules/@tensorflow/tfjs-backend-wasm/dist/"
  cp -rL "$nm/sharp" "$nm/detect-libc" "$nm/semver" "$stage/node_modules/"
  for pkg in colour sharp-linux-x64 sharp-libvips-linux-x64; do
    if [ -d "$nm/@img/$pkg" ]; then cp -rL "$nm/@img/$pkg" "$stage/node_modules/@img/"; fi
  done
  # The device machine may have no Vulkan loader (its README: bring libvulkan1).
  if ! (cd "$stage/debs" && apt-get -oAPT::Architecture=amd64 download libvulkan1 >/dev/null 2>&1); then
    echo "note: could not fetch libvulkan1 here; the device machine must have its own Vulkan loader" >&2
  fi
  tar -C "$stage" -cf - . | xz -T0 -6 >"$dest/pack.tar.xz"
  local bytes
  bytes=$(stat -c %s "$dest/pack.tar.xz")
  echo "wrote $dest/pack.tar.xz ($((bytes / 1048576)) MiB; the device tool carries 64 MiB at most)"
  if [ "$bytes" -gt $((60 * 1048576)) ]; then
    echo "error: the pack is too large to carry" >&2
    return 1
  fi
}

nvidia_icd() {
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

run() {
  local what="${1:-all}" work=/tmp/gpu-bench out="${OUT:-$root/bench-results}"
  mkdir -p "$work" "$out"
  xz -dc "$dest/pack.tar.xz" | tar -C "$work" -xf -
  if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
    for deb in "$work"/debs/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" /; done
    ldconfig
  fi
  VK_DRIVER_FILES="$(nvidia_icd)" || {
    echo "error: no NVIDIA Vulkan ICD (nvidia_icd.json) on this machine" >&2
    return 1
  }
  export VK_DRIVER_FILES
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
  # Peak GPU memory: sampled every 200 ms while the benches run.
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/gpu-memory-mib.txt" &
  local sampler=$!
  trap 'kill $sampler 2>/dev/null || true' RETURN
  local node="$work/bin/node" bench="$work/bench.mjs"
  if [ "$what" = all ] || [ "$what" = generate ]; then
    "$node" "$bench" --backend webgpu profile --res 256 --json | tee "$out/profile.json"
    "$node" "$bench" --backend webgpu generate --res 256 --batches 1,8,32 --seconds 10 | tee "$out/generate.md"
  fi
  if [ "$what" = all ] || [ "$what" = train ]; then
    "$node" "$bench" --backend webgpu train --res 256 --batch 32 --steps 16 --warmup 2 | tee "$out/train.md"
  fi
  kill "$sampler" 2>/dev/null || true
  echo "peak GPU memory: $(sort -n "$out/gpu-memory-mib.txt" | tail -1) MiB" | tee "$out/peak-memory.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:-all}" ;;
  *)
    echo "usage: bash scripts/gpu-bench.sh pack | run [generate|train|all]" >&2
    exit 2
    ;;
esac
