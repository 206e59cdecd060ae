// Reassembles a streamed weight update (header + chunks) into whole tensors,
// checking it against the header's totals and the model's parameters as
// chunks arrive, so a bad stream fails at its first bad chunk with a message
// that names the tensor.
//
// Contract of a stream (what weights_sender.cc produces):
//   1. Every parameter of the model appears once, under its name, with the
//      model's shape and a dtype of F32, BF16 or F16.
//   2. A tensor's chunks arrive in order (offsets 0, n1, n1+n2, ...) and add
//      up to its total_bytes = numel x dtype size; tensors may interleave.
//   3. The header's tensor_count and total_bytes equal what arrives; a stream
//      that stops short (sender died, call cancelled) fails Finish().
//
// Not thread-safe: one stream feeds one assembler.
#ifndef CASCADE_SERVICES_ROLLOUT_WEIGHTS_ASSEMBLER_H_
#define CASCADE_SERVICES_ROLLOUT_WEIGHTS_ASSEMBLER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/runtime.h"

namespace cascade::rollout {

// One chunk as it comes off the wire (fields of cascade.v1.TensorChunk).
struct ChunkRef {
  absl::string_view name;
  absl::string_view dtype;  // "F32", "BF16" or "F16"
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t total_bytes = 0;
  absl::string_view data;
};

class WeightsAssembler {
 public:
  // `parameters`: what the serving model holds; the header's totals.
  static absl::StatusOr<std::unique_ptr<WeightsAssembler>> Create(
      std::vector<model::ParameterInfo> parameters, int64_t tensor_count, int64_t total_bytes);

  // Copies one chunk into place; the first error is final.
  [[nodiscard]] absl::Status Add(const ChunkRef& chunk);

  // Views of the complete tensors (valid while this assembler lives), or
  // DATA_LOSS when the stream ended short of the header's totals.
  [[nodiscard]] absl::StatusOr<std::vector<model::TensorView>> Finish() const;

  int64_t received_bytes() const { return received_bytes_; }

 private:
  struct Tensor {
    model::DType dtype = model::DType::kF32;
    std::vector<int64_t> shape;
    size_t total = 0;
    size_t received = 0;
    std::unique_ptr<char[]> bytes;  // uninitialised: every byte is written once
  };

  WeightsAssembler() = default;

  std::map<std::string, std::vector<int64_t>> expected_;  // name -> shape
  int64_t tensor_count_ = 0;
  int64_t total_bytes_ = 0;
  int64_t received_bytes_ = 0;
  int64_t completed_ = 0;
  std::map<std::string, Tensor> tensors_;
};

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_WEIGHTS_ASSEMBLER_H_
