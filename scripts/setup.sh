#!/usr/bin/env bash
# Install everything needle needs on a fresh Debian/Ubuntu machine that has Node 20:
# system packages (Mesa for WebGPU in Node, Chromium for the browser test), pnpm, the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Mesa's software rasterizer gives Node's WebGPU (Dawn) an adapter on machines with no GPU.
# Chromium runs the browser tests; it is optional here (on Ubuntu the apt package is a snap shim
# that fails in containers): without it those tests skip loudly, unless NEEDLE_REQUIRE_WEBGPU=1.
# Both come from the distribution, never from a browser download.
apt_install() {
  local missing=""
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  echo "setup: installing system packages:$missing"
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
apt_install mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgles2
apt_install chromium || echo "setup: WARNING: chromium could not be installed; the browser tests will skip (or fail with NEEDLE_REQUIRE_WEBGPU=1)" >&2

# pnpm 12 as a global npm package (corepack fails signature checks here; see CONTRIBUTING.md, section 7).
if [ "$(pnpm --version 2>/dev/null || true)" != "12.21.0" ]; then
  echo "setup: installing pnpm 12.21.0"
  $SUDO npm install -g pnpm@12.21.0 >/dev/null 2>&1
fi

pnpm install --frozen-lockfile
