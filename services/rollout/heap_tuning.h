// Keeps large freed blocks in the process heap instead of returning them to
// the kernel.
//
// Why: every weight update allocates a fresh copy of the model (and the
// stream's buffers). With glibc's defaults, blocks of 32 MiB and more are
// mmap'd and unmapped each time, and threads other than main allocate from
// per-thread arenas whose heaps are capped at 64 MiB (larger blocks are
// mmap'd there too), so each update page-faults the whole model in again. On
// virtual machines a fault costs microseconds, and the faults, not the
// copies, dominated: a 100M-parameter update over loopback took ~2.1 s with
// the defaults and ~0.4 s with one arena that keeps its memory
// (bench/rollout/weights_bench.cc, 2-vCPU VM). The costs: the process keeps
// its peak heap (two model copies plus one update in flight) mapped, and all
// threads share one malloc lock (cheap next to the model's own compute).

//
// Call once at the start of main(), before threads start.
#ifndef CASCADE_SERVICES_ROLLOUT_HEAP_TUNING_H_
#define CASCADE_SERVICES_ROLLOUT_HEAP_TUNING_H_

#include <malloc.h>

namespace cascade::rollout {

inline void KeepLargeAllocationsInHeap() {
  // Large blocks come from the heap (reusable) rather than fresh mmaps...
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  // ...and freeing them never shrinks the heap back to the kernel (-1:
  // glibc never trims). A finite threshold is not enough: a learner step on
  // a large vocabulary frees more than 1 GiB of logits at once, the heap was
  // trimmed after every step and the next step faulted it all in again
  // (~100k faults/s, a third of the CPU, on the tiny cascade).
  mallopt(M_TRIM_THRESHOLD, -1);
  // One arena: the gRPC and weight-apply threads reuse the memory the
  // previous update freed instead of faulting in their own.
  mallopt(M_ARENA_MAX, 1);
}

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_HEAP_TUNING_H_
