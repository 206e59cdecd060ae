// safetensors reader and writer (our own implementation of the format).
//
// Format: 8-byte little-endian u64 header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"k": "v"}}
// then the raw little-endian tensor bytes; offsets are relative to the end of
// the header. Sharded checkpoints add model.safetensors.index.json
//   {"metadata": {"total_size": N}, "weight_map": {"name": "model-00001-of-00002.safetensors"}}.
//
// Reading memory-maps the file: TensorView::data points into the mapping and
// stays valid while the SafetensorsFile lives. Every structural fact of the
// header is checked against the file size before any byte is touched, so a
// corrupt or truncated file fails with DataLoss naming the file and the tensor.
//
// This header is torch-free; model/transformer.cc converts views to tensors.
// Thread-safety: an opened file is immutable; concurrent reads are safe.
#ifndef CASCADE_MODEL_SAFETENSORS_H_
#define CASCADE_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/status.h"

namespace cascade::model {

enum class DType { kF32, kBF16, kF16 };

const char* DTypeName(DType dtype);   // "F32", "BF16", "F16" (safetensors spelling)
size_t DTypeSize(DType dtype);
StatusOr<DType> ParseDType(const std::string& name);
// Hugging Face torch_dtype spelling: "float32", "bfloat16", "float16".
const char* TorchDTypeName(DType dtype);
StatusOr<DType> ParseTorchDType(const std::string& name);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json.
class SafetensorsCheckpoint {
 public:
  static StatusOr<SafetensorsCheckpoint> OpenDir(const std::string& dir);

  const TensorView* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  // The file holding `name`, for error messages.
  std::string FileOf(const std::string& name) const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorView*>> index_;
};

// A tensor to write; `data` must hold `nbytes` little-endian bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes one .safetensors file atomically (temporary file, then rename).
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` into `dir` as model.safetensors when they fit in
// `max_shard_bytes`, otherwise as model-0000i-of-0000n.safetensors shards plus
// model.safetensors.index.json, the layout transformers and vLLM expect.
Status WriteSafetensorsDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                           size_t max_shard_bytes = size_t{5} << 30);

}  // namespace cascade::model

#endif  // CASCADE_MODEL_SAFETENSORS_H_
