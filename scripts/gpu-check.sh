#!/usr/bin/env bash
# Builds model/ (and bench/model) on their own against the libtorch of an
# installed PyTorch, then runs the model tests and the model benchmark on the
# GPU. Needs only: cmake (>= 3.18), a C++17 compiler (C++20 for PyTorch >=
# 2.12, whose headers demand it), python3 with torch (CUDA build) and, for the
# tests, Catch2 v2 (catch2/catch.hpp on the include path or CATCH2_INCLUDE=dir).
# With the `transformers` package the benchmark's GPU peer is transformers and
# a test loads our saved directories in it. Works on any machine with PyTorch
# and a GPU; nothing else of the project (gRPC, absl, ...) is needed.
#
# Runs, in order: every CPU model test against this PyTorch; the hidden
# "[gpu-check]" tests (model/gpu_check_test.cc: CUDA float32/bfloat16 logits,
# generation, save/load, gradients; transformers loading); the benchmark on
# the GPU and, for the ratio, on the CPU. Logs and JSON go to --out DIR.
#
#   scripts/gpu-check.sh [--python PY] [--build-dir DIR] [--device cuda] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=python3
BUILD=build-gpu-check
DEVICE=cuda
OUT_DIR=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PY=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
PY=$(command -v "$PY")
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
CXX11_ABI=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu:", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
CXX_STANDARD=$("$PY" -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 12) else 17)')
OUT_DIR=${OUT_DIR:-$BUILD}
mkdir -p "$OUT_DIR"

# A top-level project that stands in for the repository's: the same target
# helpers, minus everything model/ does not use.
mkdir -p "$BUILD/project"
cat > "$BUILD/project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(cascade_model_gpu LANGUAGES CXX)
set(CMAKE_CXX_STANDARD $CXX_STANDARD)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY \${CMAKE_BINARY_DIR}/bin)
set(CASCADE_ROOT_DIR "$ROOT")
find_package(Threads REQUIRED)
find_package(Torch REQUIRED)
# A pip libtorch.so exports its own copy of std::filesystem (an older
# libstdc++'s, linked in statically). Listed after it, the system libstdc++
# loses the symbol lookup and fs::remove_all jumps into the wrong layout
# (SIGSEGV). Naming libstdc++ first on every link line puts it first.
link_libraries(stdc++)
add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=$CXX11_ABI)
function(cascade_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" \${ARGN})
  add_library(\${name} STATIC \${ARG_SRCS})
  target_include_directories(\${name} PUBLIC \${CASCADE_ROOT_DIR})
  target_link_libraries(\${name} PUBLIC \${ARG_DEPS} PRIVATE \${ARG_PRIVATE_DEPS})
endfunction()
function(cascade_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" \${ARGN})
  add_executable(\${name} \${ARG_SRCS})
  target_include_directories(\${name} PRIVATE \${CASCADE_ROOT_DIR})
  target_link_libraries(\${name} PRIVATE \${ARG_DEPS})
endfunction()
if(DEFINED ENV{CATCH2_INCLUDE})
  set(CATCH_INCLUDE "\$ENV{CATCH2_INCLUDE}")
else()
  find_path(CATCH_INCLUDE catch2/catch.hpp)
endif()
if(CATCH_INCLUDE)
  set(BUILD_TESTING ON)
  file(WRITE \${CMAKE_BINARY_DIR}/catch_main.cc "#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n")
  add_library(catch_main STATIC \${CMAKE_BINARY_DIR}/catch_main.cc)
  target_include_directories(catch_main PUBLIC \${CATCH_INCLUDE})
  function(cascade_test name)
    cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" \${ARGN})
    add_executable(\${name} \${ARG_SRCS})
    target_include_directories(\${name} PRIVATE \${CASCADE_ROOT_DIR})
    target_link_libraries(\${name} PRIVATE catch_main \${ARG_DEPS})
  endfunction()
else()
  message(WARNING "Catch2 not found: building the benchmark only (set CATCH2_INCLUDE)")
  set(BUILD_TESTING OFF)
endif()
add_subdirectory(\${CASCADE_ROOT_DIR}/model \${CMAKE_BINARY_DIR}/model)
CMAKE

# nccl.h of the nvidia-nccl wheel, for the weight group's NCCL backend (none: gloo only).
NCCL_INCLUDE=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
cmake -S "$BUILD/project" -B "$BUILD" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DCASCADE_MODEL_PYTHON="$PY" ${NCCL_INCLUDE:+-DNCCL_INCLUDE_DIR="$NCCL_INCLUDE"} \
  $(command -v ninja >/dev/null && echo -G Ninja)
status=0
# Keep going past a target that fails (say the weight group against another
# c10d API): the tests and the benchmark are worth running without it.
KEEP_GOING=$(command -v ninja >/dev/null && echo "-k 0" || echo "-k")
build() { cmake --build "$BUILD" -j "$(nproc)" -- $KEEP_GOING >>"$OUT_DIR/build.log" 2>&1; }
if ! build; then
  status=1
  grep -E -A6 'error|Error' "$OUT_DIR/build.log" | head -80 || true
  if [[ ! -x "$BUILD/bin/model_test" ]]; then
    echo "== build failed (see build.log); retrying without the weight group"
    cmake -DCASCADE_MODEL_WEIGHT_GROUP=OFF "$BUILD" >/dev/null
    build || tail -40 "$OUT_DIR/build.log"
  fi
fi

if [[ -x "$BUILD/bin/model_test" ]]; then
  echo "== model tests (CPU float32 against the Python reference, this libtorch)"
  "$BUILD/bin/model_test" 2>&1 | tee "$OUT_DIR/model_test.log" | tail -30 || status=1
  echo "== GPU and transformers checks (model_test \"[gpu-check]\")"
  "$BUILD/bin/model_test" "[gpu-check]" 2>&1 | tee "$OUT_DIR/gpu_check_test.log" || status=1
else
  status=1
fi
if [[ -x "$BUILD/bin/model_bench" ]]; then
  echo "== model benchmark on $DEVICE"
  "$BUILD/bin/model_bench" --device "$DEVICE" --benchmark_out="$OUT_DIR/model_bench_$DEVICE.json" || status=1
  echo "== model benchmark on cpu (same machine, for the ratio)"
  "$BUILD/bin/model_bench" --device cpu --quick --benchmark_out="$OUT_DIR/model_bench_cpu.json" || status=1
else
  status=1
fi
echo "gpu-check: $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
exit $status
