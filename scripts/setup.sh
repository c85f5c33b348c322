#!/usr/bin/env bash
# Install everything needle needs on a fresh Debian/Ubuntu machine that has Node 20:
# system packages (Mesa for WebGPU in Node, Chromium for the browser test), pnpm, the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Mesa's software rasterizer gives Node's WebGPU (Dawn) an adapter on machines with no GPU;
# Chromium runs the browser test. Both come from Debian, never from a browser download.
APT_PACKAGES="mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgles2 chromium"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# pnpm 12 as a global npm package (corepack fails signature checks here; see TOOLCHAIN.md).
if [ "$(pnpm --version 2>/dev/null || true)" != "12.21.0" ]; then
  echo "setup: installing pnpm 12.21.0"
  $SUDO npm install -g pnpm@12.21.0 >/dev/null 2>&1
fi

pnpm install --frozen-lockfile
