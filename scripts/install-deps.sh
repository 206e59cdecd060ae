#!/usr/bin/env bash
# Installs every Debian package Cascade needs to build, test and run.
# Idempotent: packages already present are skipped by apt; safe to run again.
#
# Traps this list avoids (measured, see DESIGN.md §5):
#  - libopenblas0-serial: without an optimized BLAS libtorch falls back to the
#    reference BLAS (~26x slower matmuls); the pthread OpenBLAS breaks
#    prometheus-cpp's civetweb exposer in the same process. Serial is fast, but it
#    is not reentrant (built without USE_LOCKING): model::CpuComputeLock keeps
#    two threads from multiplying at once.
#  - protobuf-compiler-grpc: required for find_package(gRPC) to find grpc_cpp_plugin.
#  - libgloo-dev: libtorch's ProcessGroupGloo headers need it.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  # rpc, config, metrics
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev nlohmann-json3-dev
  # tests and benchmarks
  catch2 libbenchmark-dev python3 python3-sympy
  # independent references for the model runtime's tests and benchmark
  python3-torch python3-numpy
  # verifier backends: math (GiNaC), instruction following (ICU, CLD2), sandbox (seccomp)
  libginac-dev libcln-dev libicu-dev libcld2-dev libseccomp-dev
  # tokenizer, job store
  libpcre2-dev libutf8proc-dev libsqlite3-dev
  # learner checkpoint checksums (SHA-256); certificates for the TLS test
  libssl-dev openssl
  # torch core (model runtime, learner, rollout)
  libtorch-dev libgloo-dev libopenblas0-serial
  # deployment checks (scripts/check-deploy.sh): promtool, manifest and schema checks, /metrics scrapes
  prometheus python3-yaml python3-jsonschema curl
)

# npm (tokenizer oracle, helm/kubectl packages) is taken from the machine when
# present; Debian's own nodejs/npm only when there is none.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Serial OpenBLAS must be the alternative libtorch picks up, even when the
# pthread variant was installed by something else first.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  target=/usr/lib/x86_64-linux-gnu/openblas-serial/${alt%%-x86_64-linux-gnu}
  if [[ -e $target ]] && update-alternatives --list "$alt" 2>/dev/null | grep -qx "$target"; then
    $SUDO update-alternatives --set "$alt" "$target" >/dev/null
  fi
done
