#!/usr/bin/env bash
# Collects, from this Debian machine's packages (scripts/install-deps.sh), what
# scripts/gpu-check.sh needs besides PyTorch into one folder, for a GPU
# machine that has PyTorch but not these development packages and no network:
# Catch2 v2's single header, the gloo headers, and a prefix with Abseil
# (headers, shared libraries, CMake config), nlohmann-json and OpenSSL's
# libcrypto. Copy the folder there and run, from the repository root:
#
#   export CATCH2_INCLUDE=DIR GLOO_INCLUDE=DIR CMAKE_PREFIX_PATH=DIR/prefix OPENSSL_ROOT_DIR=DIR/prefix
#   bash scripts/gpu-check.sh --learner
#
#   scripts/gpu-check-bundle.sh DIR
set -euo pipefail
DIR=${1:?usage: scripts/gpu-check-bundle.sh DIR}
LIB=/usr/lib/x86_64-linux-gnu
rm -rf "$DIR"
mkdir -p "$DIR/catch2" "$DIR/prefix/include/openssl" "$DIR/prefix/lib/x86_64-linux-gnu/cmake" \
  "$DIR/prefix/share/cmake"
cp /usr/include/catch2/catch.hpp "$DIR/catch2/"
cp -r /usr/include/gloo "$DIR/"
cp -r /usr/include/absl /usr/include/nlohmann "$DIR/prefix/include/"
cp -r /usr/include/openssl/. /usr/include/x86_64-linux-gnu/openssl/. "$DIR/prefix/include/openssl/"
cp -r "$LIB/cmake/absl" "$DIR/prefix/lib/x86_64-linux-gnu/cmake/"
cp -r /usr/share/cmake/nlohmann_json "$DIR/prefix/share/cmake/"
# Each Abseil library under its file name (the CMake config's) and its soname
# (what the binaries load), as plain files: links may not survive the copy.
for f in "$LIB"/libabsl_*.so.*.*.*; do
  name=$(basename "$f")
  cp -L "$f" "$DIR/prefix/lib/x86_64-linux-gnu/$name"
  cp -L "$f" "$DIR/prefix/lib/x86_64-linux-gnu/$(objdump -p "$f" | awk '/SONAME/ {print $2}')"
done
cp -L "$LIB/libcrypto.so.3" "$DIR/prefix/lib/libcrypto.so.3"
cp -L "$LIB/libcrypto.so.3" "$DIR/prefix/lib/libcrypto.so"
du -sh "$DIR"
