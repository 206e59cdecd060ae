#include "services/rollout/weights_assembler.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cascade::rollout {
namespace {

std::string Shape(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightsAssembler>> WeightsAssembler::Create(
    std::vector<model::ParameterInfo> parameters, int64_t tensor_count, int64_t total_bytes) {
  if (tensor_count != static_cast<int64_t>(parameters.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights header announces ", tensor_count, " tensors but the model has ",
                     parameters.size(), " parameters"));
  }
  if (total_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("weights header total_bytes ", total_bytes,
                                                   " is negative"));
  }
  std::unique_ptr<WeightsAssembler> a(new WeightsAssembler());
  for (auto& p : parameters) a->expected_[p.name] = std::move(p.shape);
  a->tensor_count_ = tensor_count;
  a->total_bytes_ = total_bytes;
  return a;
}

absl::Status WeightsAssembler::Add(const ChunkRef& chunk) {
  const std::string name(chunk.name);
  auto expected = expected_.find(name);
  if (expected == expected_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\" is not a parameter of the served model (e.g. \"",
                     expected_.empty() ? "" : expected_.begin()->first, "\")"));
  }
  model::StatusOr<model::DType> dtype = model::ParseDType(std::string(chunk.dtype));
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": dtype \"", chunk.dtype,
                                                   "\" (expected F32, BF16 or F16)"));
  }
  if (chunk.shape != expected->second) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": shape ",
                                                   Shape(chunk.shape), ", the model's is ",
                                                   Shape(expected->second)));
  }
  int64_t numel = 1;
  for (int64_t d : chunk.shape) numel *= d;
  const int64_t want = numel * static_cast<int64_t>(model::DTypeSize(*dtype));
  if (chunk.total_bytes != want) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": total_bytes ",
                                                   chunk.total_bytes, ", shape ", Shape(chunk.shape),
                                                   " in ", chunk.dtype, " is ", want, " bytes"));
  }
  auto [it, first] = tensors_.try_emplace(name);
  Tensor& t = it->second;
  if (first) {
    t.dtype = *dtype;
    t.shape = chunk.shape;
    t.total = static_cast<size_t>(want);
    t.bytes.reset(new char[t.total == 0 ? 1 : t.total]);
  } else if (t.dtype != *dtype) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": dtype changed from ",
                                                   model::DTypeName(t.dtype), " to ", chunk.dtype,
                                                   " between chunks"));
  } else if (t.received == t.total) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" sent twice"));
  }
  if (chunk.offset != static_cast<int64_t>(t.received)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": chunk at offset ",
                                                   chunk.offset, ", expected ", t.received,
                                                   " (chunks of a tensor come in order)"));
  }
  if (t.received + chunk.data.size() > t.total) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": chunk of ",
                                                   chunk.data.size(), " bytes at offset ",
                                                   chunk.offset, " overruns its ", t.total, " bytes"));
  }
  if (received_bytes_ + static_cast<int64_t>(chunk.data.size()) > total_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("weights exceed the header's total_bytes ",
                                                   total_bytes_, " at tensor \"", name, "\""));
  }
  std::memcpy(t.bytes.get() + t.received, chunk.data.data(), chunk.data.size());
  t.received += chunk.data.size();
  received_bytes_ += static_cast<int64_t>(chunk.data.size());
  if (t.received == t.total) ++completed_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<model::TensorView>> WeightsAssembler::Finish() const {
  if (completed_ != tensor_count_ || received_bytes_ != total_bytes_) {
    std::string missing;
    for (const auto& [name, shape] : expected_) {
      auto it = tensors_.find(name);
      if (it == tensors_.end() || it->second.received < it->second.total) {
        missing = name;
        break;
      }
    }
    return absl::DataLossError(absl::StrCat(
        "weights stream ended early: ", completed_, " of ", tensor_count_, " tensors and ",
        received_bytes_, " of ", total_bytes_, " bytes received",
        missing.empty() ? "" : absl::StrCat(" (first incomplete: \"", missing, "\")")));
  }
  std::vector<model::TensorView> views;
  views.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) {
    model::TensorView v;
    v.name = name;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.data = t.bytes.get();
    v.nbytes = t.total;
    views.push_back(std::move(v));
  }
  return views;
}

}  // namespace cascade::rollout
