#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) so the webgpu backend (Dawn) runs on machines without
# a GPU: CI runs the WebGPU tests on it. Dawn needs Mesa >= 24. Debian 12's own Mesa 22.3 is too
# old, so on bookworm it comes from bookworm-backports (25.x); newer distributions ship it.
# Idempotent; run as root or with sudo available. Then: CI_REQUIRE_WEBGPU=1 npx vitest run test/backend.test.ts
set -euo pipefail

MIN_MESA=24
SUDO=''
if [ "$(id -u)" -ne 0 ]; then SUDO='sudo'; fi

mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
mesa_is_new_enough() {
  local version
  version=$(mesa_version)
  [ -n "$version" ] && dpkg --compare-versions "$version" ge "$MIN_MESA"
}
lavapipe_icd() { ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n 1 || true; }

if mesa_is_new_enough && [ -n "$(lavapipe_icd)" ]; then
  echo "lavapipe already installed: mesa-vulkan-drivers $(mesa_version), $(lavapipe_icd)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
target=()
if [ "$codename" = bookworm ]; then
  sources=/etc/apt/sources.list.d/debian.sources
  backports=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f "$sources" ]; then
      # Copy the machine's own Debian entry (its mirror and signing key) with the suite renamed.
      awk 'BEGIN{RS=""; ORS="\n\n"} /Suites:[^\n]*bookworm( |$|\n)/ && !/security/ {print; exit}' "$sources" \
        | sed -E 's/^Suites:.*/Suites: bookworm-backports/' | $SUDO tee "$backports" >/dev/null
    else
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
  fi
  # -t pulls the libdrm/libllvm versions the backported Mesa needs from the same suite.
  target=(-t bookworm-backports)
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null

if ! mesa_is_new_enough || [ -z "$(lavapipe_icd)" ]; then
  echo "error: mesa-vulkan-drivers $(mesa_version) has no usable lavapipe: Dawn needs Mesa >= $MIN_MESA" >&2
  exit 1
fi
echo "lavapipe installed: mesa-vulkan-drivers $(mesa_version), $(lavapipe_icd)"
echo "if another Vulkan driver is preferred, pin this one: export VK_DRIVER_FILES=$(lavapipe_icd)"
