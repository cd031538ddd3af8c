#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) from bookworm-backports so the webgpu backend (Dawn)
# runs on machines without a GPU. Debian 12's own Mesa 22.3 is too old for Dawn; backports has 25.x.
set -euo pipefail
if [ -f /usr/share/vulkan/icd.d/lvp_icd.json ] && dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^2[4-9]'; then
  echo "lavapipe already installed: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  exit 0
fi
sources=/etc/apt/sources.list.d/debian.sources
backports=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$backports" ]; then
  if [ -f "$sources" ]; then
    # Copy the machine's own Debian entry (mirror and key) with the suite renamed.
    awk 'BEGIN{RS=""; ORS="\n\n"} /Suites:[^\n]*bookworm( |$|\n)/ && !/security/ {print; exit}' "$sources" \
      | sed -E 's/^Suites:.*/Suites: bookworm-backports/' >"$backports"
  else
    echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
  fi
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "lavapipe installed: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
