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
# the GPU and, for the ratio, on the CPU. With two GPUs or more, the hidden
# "[nccl]" tests too. Logs and JSON go to --out DIR.
#
# --learner also builds the learner's torch core (services/learner/
# learner_core, common/ json and runtime) and runs its tests, the hidden
# "[gpu-check]" ones being the bfloat16 CUDA learner. It needs Abseil,
# nlohmann-json and OpenSSL's libcrypto where CMake finds them (apt:
# libabsl-dev nlohmann-json3-dev libssl-dev, or CMAKE_PREFIX_PATH; on a
# machine without them, scripts/gpu-check-bundle.sh gathers them). --gpu-only
# skips the CPU test suites, --no-bench the benchmark, --learner-only the
# model tests and the benchmark.
#
#   scripts/gpu-check.sh [--python PY] [--build-dir DIR] [--device cuda] [--out DIR]
#                        [--learner | --learner-only] [--gpu-only] [--no-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=python3
BUILD=build-gpu-check
DEVICE=cuda
OUT_DIR=
LEARNER=0
GPU_ONLY=0
BENCH=1
MODEL_TESTS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PY=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --learner) LEARNER=1; shift ;;
    --learner-only) LEARNER=1; MODEL_TESTS=0; BENCH=0; shift ;;
    --gpu-only) GPU_ONLY=1; shift ;;
    --no-bench) BENCH=0; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
PY=$(command -v "$PY")
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
CXX11_ABI=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu:", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
# The NCCL tests ("[nccl]": the weight group's broadcast, two data-parallel
# learner ranks) need two GPUs, as NCCL refuses two ranks on one device.
GPU_TESTS="[gpu-check]"
# Without the transformers package its loading test is left out (and the
# benchmark reports no GPU peer).
"$PY" -c 'import transformers' 2>/dev/null || GPU_TESTS="[gpu-check]~[transformers]"
[[ $GPUS -ge 2 ]] && GPU_TESTS="$GPU_TESTS,[nccl]"
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
# Libraries from a prefix outside the loader's path (CMAKE_PREFIX_PATH) load
# each other too: DT_RPATH, unlike the default DT_RUNPATH, also serves the
# dependencies of dependencies (Abseil's libraries need one another).
add_link_options(-Wl,--disable-new-dtags)
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
if(CASCADE_GPU_CHECK_LEARNER)
  find_package(absl REQUIRED)
  find_package(nlohmann_json REQUIRED)
  set(CASCADE_TORCH_CORE_ONLY ON)
  add_subdirectory(\${CASCADE_ROOT_DIR}/common \${CMAKE_BINARY_DIR}/common)
  cascade_library(test_util SRCS \${CASCADE_ROOT_DIR}/tests/util/subprocess.cc DEPS absl::time)
  add_subdirectory(\${CASCADE_ROOT_DIR}/services/learner \${CMAKE_BINARY_DIR}/services/learner)
endif()
CMAKE

# nccl.h of the nvidia-nccl wheel, for the weight group's NCCL backend (none: gloo only).
NCCL_INCLUDE=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
cmake -S "$BUILD/project" -B "$BUILD" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DCASCADE_MODEL_PYTHON="$PY" ${NCCL_INCLUDE:+-DNCCL_INCLUDE_DIR="$NCCL_INCLUDE"} \
  -DCASCADE_GPU_CHECK_LEARNER=$LEARNER -DCASCADE_MODEL_WEIGHT_GROUP=ON \
  $(command -v ninja >/dev/null && echo -G Ninja)
status=0
# A failed build must not leave an earlier run's binaries to be tested.
rm -f "$BUILD"/bin/{model_test,model_bench,learner_core_test}
: >"$OUT_DIR/build.log"
# Keep going past a target that fails (say the weight group against another
# c10d API): the tests and the benchmark are worth running without it.
KEEP_GOING=$(command -v ninja >/dev/null && echo "-k 0" || echo "-k")
TARGETS=()
[[ $MODEL_TESTS -eq 0 ]] && TARGETS=(--target learner_core_test)
build() { cmake --build "$BUILD" -j "$(nproc)" "${TARGETS[@]}" -- $KEEP_GOING >>"$OUT_DIR/build.log" 2>&1; }
if ! build; then
  status=1
  grep -E -A6 'error|Error' "$OUT_DIR/build.log" | head -80 || true
  if [[ $MODEL_TESTS -eq 1 && ! -x "$BUILD/bin/model_test" ]]; then
    echo "== build failed (see build.log); retrying without the weight group"
    cmake -DCASCADE_MODEL_WEIGHT_GROUP=OFF "$BUILD" >/dev/null
    build || tail -40 "$OUT_DIR/build.log"
  fi
fi

# run_tests NAME: the CPU suite (unless --gpu-only), then the "[gpu-check]" tests.
run_tests() {
  local bin="$BUILD/bin/$1"
  if [[ ! -x "$bin" ]]; then
    echo "== $1 was not built (see build.log)"
    status=1
    return
  fi
  if [[ $GPU_ONLY -eq 0 ]]; then
    echo "== $1 (CPU, this libtorch)"
    "$bin" 2>&1 | tee "$OUT_DIR/$1.log" | tail -30 || status=1
  fi
  echo "== $1 \"$GPU_TESTS\" ($GPUS GPUs)"
  "$bin" "$GPU_TESTS" 2>&1 | tee "$OUT_DIR/$1_gpu_check.log" || status=1
}
[[ $MODEL_TESTS -eq 1 ]] && run_tests model_test
[[ $LEARNER -eq 1 ]] && run_tests learner_core_test
if [[ $BENCH -eq 0 ]]; then
  :
elif [[ -x "$BUILD/bin/model_bench" ]]; then
  echo "== model benchmark on $DEVICE"
  "$BUILD/bin/model_bench" --device "$DEVICE" --benchmark_out="$OUT_DIR/model_bench_$DEVICE.json" || status=1
  echo "== model benchmark on cpu (same machine, for the ratio)"
  "$BUILD/bin/model_bench" --device cpu --quick --benchmark_out="$OUT_DIR/model_bench_cpu.json" || status=1
else
  status=1
fi
echo "gpu-check: $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
exit $status
