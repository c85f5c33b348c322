#!/bin/sh
# Prepare OpenBLAS for the torch:cpu target, the way a Debian user gets a fast BLAS under
# python3-torch without root: download Debian's libopenblas0-pthread package (not installed), unpack
# it into apps/bench/.cache/openblas, and print the folder to give the bench:
#
#   node apps/bench/dist/cli.js ... --torch-blas "$(sh apps/bench/scripts/prepare-openblas.sh)"
#
# Debian's torch links the generic libblas.so.3; with LD_LIBRARY_PATH at this folder the loader
# picks OpenBLAS's libblas.so.3 instead of the reference netlib one. Needs apt-get (Debian/Ubuntu)
# and dpkg; runs once, later calls only print the folder. Progress goes to stderr.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cache="$here/.cache/openblas"
lib="$cache/root/usr/lib/x86_64-linux-gnu/openblas-pthread"
if [ ! -f "$lib/libblas.so.3" ]; then
  mkdir -p "$cache"
  cd "$cache"
  rm -f libopenblas0-pthread_*.deb
  echo "prepare-openblas: apt-get download libopenblas0-pthread into $cache" >&2
  apt-get download libopenblas0-pthread >&2
  dpkg -x libopenblas0-pthread_*.deb root
  lib=$(dirname "$(find "$cache/root" -path '*openblas-pthread/libblas.so.3' | head -n 1)")
  [ -f "$lib/libblas.so.3" ] || { echo "prepare-openblas: no openblas-pthread/libblas.so.3 in the package" >&2; exit 1; }
fi
echo "$lib"
