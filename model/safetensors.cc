#include "model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/json.h"

namespace cascade::model {
namespace {

// A header larger than this is not a real checkpoint (HF caps it at 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

Status Corrupt(const std::string& path, const std::string& what) {
  return DataLossError(path + ": corrupt safetensors file: " + what);
}

bool IsLittleEndian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "?";
}

size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  return InvalidArgumentError("unsupported dtype \"" + name + "\" (expected F32, BF16 or F16)");
}

const char* TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
  }
  return "?";
}

StatusOr<DType> ParseTorchDType(const std::string& name) {
  if (name == "float32") return DType::kF32;
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kF16;
  return InvalidArgumentError("unsupported dtype \"" + name +
                              "\" (expected float32, bfloat16 or float16)");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  if (!IsLittleEndian()) return UnimplementedError("safetensors needs a little-endian host");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return DataLossError(path + ": cannot stat: " + std::strerror(errno));
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Corrupt(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length (truncated?)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return DataLossError(path + ": mmap failed: " + std::strerror(errno));

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  const auto* bytes = static_cast<const unsigned char*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return Corrupt(path, "header length " + std::to_string(header_len) + " exceeds 100 MB");
  }
  if (header_len + 8 > size) {
    return Corrupt(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                             std::to_string(size) + "-byte file (truncated?)");
  }
  StatusOr<Json> header =
      Json::Parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len));
  if (!header.ok()) return Corrupt(path, "header: " + header.status().message());
  if (!header->is_object()) return Corrupt(path, "header is not a JSON object");

  const size_t data_begin = 8 + header_len;
  const size_t data_size = size - data_begin;
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& [name, entry] : header->as_object()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Corrupt(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.as_object()) {
        if (!v.is_string()) return Corrupt(path, "__metadata__." + k + " is not a string");
        file->metadata_[k] = v.as_string();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\": ";
    if (!entry.is_object()) return Corrupt(path, where + "entry is not an object");
    const Json* dtype = entry.Find("dtype");
    const Json* shape = entry.Find("shape");
    const Json* offsets = entry.Find("data_offsets");
    if (dtype == nullptr || !dtype->is_string()) return Corrupt(path, where + "dtype missing");
    if (shape == nullptr || !shape->is_array()) return Corrupt(path, where + "shape missing");
    if (offsets == nullptr || !offsets->is_array() || offsets->as_array().size() != 2 ||
        !offsets->as_array()[0].is_int() || !offsets->as_array()[1].is_int()) {
      return Corrupt(path, where + "data_offsets must be two integers");
    }
    StatusOr<DType> dt = ParseDType(dtype->as_string());
    if (!dt.ok()) return InvalidArgumentError(path + ": " + where + dt.status().message());
    TensorView view;
    view.name = name;
    view.dtype = *dt;
    uint64_t numel = 1;
    for (const Json& d : shape->as_array()) {
      if (!d.is_int() || d.as_int() < 0) return Corrupt(path, where + "bad shape");
      view.shape.push_back(d.as_int());
      numel *= static_cast<uint64_t>(d.as_int());
      if (numel > (uint64_t{1} << 50)) return Corrupt(path, where + "shape too large");
    }
    int64_t begin = offsets->as_array()[0].as_int();
    int64_t end = offsets->as_array()[1].as_int();
    if (begin < 0 || end < begin) return Corrupt(path, where + "data_offsets out of order");
    if (static_cast<uint64_t>(end) > data_size) {
      return Corrupt(path, where + "data ends at byte " + std::to_string(end) + " but the file holds " +
                               std::to_string(data_size) + " data bytes (truncated?)");
    }
    uint64_t want = numel * DTypeSize(view.dtype);
    if (static_cast<uint64_t>(end - begin) != want) {
      return Corrupt(path, where + "data_offsets span " + std::to_string(end - begin) +
                               " bytes but dtype and shape need " + std::to_string(want));
    }
    view.data = bytes + data_begin + begin;
    view.nbytes = static_cast<size_t>(want);
    spans.emplace_back(static_cast<size_t>(begin), static_cast<size_t>(end));
    file->by_name_[name] = file->tensors_.size();
    file->tensors_.push_back(std::move(view));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) return Corrupt(path, "tensor data regions overlap");
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

StatusOr<SafetensorsCheckpoint> SafetensorsCheckpoint::OpenDir(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint ckpt;
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  std::vector<std::string> shard_names;
  if (fs::exists(index_path)) {
    StatusOr<std::string> text = ReadFileToString(index_path);
    if (!text.ok()) return text.status();
    StatusOr<Json> index = Json::Parse(*text);
    if (!index.ok()) return DataLossError(index_path + ": " + index.status().message());
    const Json* weight_map = index->Find("weight_map");
    if (weight_map == nullptr || !weight_map->is_object()) {
      return DataLossError(index_path + ": weight_map: missing or not an object");
    }
    std::map<std::string, size_t> shard_ids;
    std::map<std::string, std::string> wanted;
    for (const auto& [name, shard] : weight_map->as_object()) {
      if (!shard.is_string() || shard.as_string().find('/') != std::string::npos) {
        return DataLossError(index_path + ": weight_map." + name + ": expected a file name");
      }
      wanted[name] = shard.as_string();
      if (!shard_ids.count(shard.as_string())) {
        shard_ids[shard.as_string()] = shard_names.size();
        shard_names.push_back(shard.as_string());
      }
    }
    for (const std::string& shard : shard_names) {
      auto f = SafetensorsFile::Open((fs::path(dir) / shard).string());
      if (!f.ok()) return f.status();
      ckpt.files_.push_back(std::shared_ptr<SafetensorsFile>(std::move(*f)));
    }
    for (const auto& [name, shard] : wanted) {
      size_t id = shard_ids[shard];
      const TensorView* v = ckpt.files_[id]->Find(name);
      if (v == nullptr) {
        return DataLossError(index_path + ": weight_map." + name + ": tensor not found in " + shard);
      }
      ckpt.index_[name] = {id, v};
    }
    return ckpt;
  }
  if (!fs::exists(single)) {
    return NotFoundError(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  auto f = SafetensorsFile::Open(single);
  if (!f.ok()) return f.status();
  ckpt.files_.push_back(std::shared_ptr<SafetensorsFile>(std::move(*f)));
  for (const TensorView& v : ckpt.files_[0]->tensors()) ckpt.index_[v.name] = {0, &v};
  return ckpt;
}

const TensorView* SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.second;
}

std::vector<std::string> SafetensorsCheckpoint::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : index_) names.push_back(name);
  return names;
}

std::string SafetensorsCheckpoint::FileOf(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return files_.empty() ? std::string("<no file>") : files_[0]->path();
  return files_[it->second.first]->path();
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  if (!IsLittleEndian()) return UnimplementedError("safetensors needs a little-endian host");
  Json header = Json::MakeObject();
  if (!metadata.empty()) {
    Json meta = Json::MakeObject();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    uint64_t numel = 1;
    Json shape = Json::MakeArray();
    for (int64_t d : t.shape) {
      shape.push_back(Json(d));
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * DTypeSize(t.dtype) != t.nbytes) {
      return InvalidArgumentError(path + ": tensor \"" + t.name + "\": " + std::to_string(t.nbytes) +
                                  " bytes given for its shape and dtype");
    }
    if (header.Find(t.name) != nullptr) {
      return InvalidArgumentError(path + ": duplicate tensor name \"" + t.name + "\"");
    }
    Json entry = Json::MakeObject();
    entry["dtype"] = DTypeName(t.dtype);
    entry["shape"] = shape;
    entry["data_offsets"] = Json(Json::Array{Json(offset), Json(offset + t.nbytes)});
    header[t.name] = entry;
    offset += t.nbytes;
  }
  std::string text = header.Dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');

  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return FailedPreconditionError(tmp + ": cannot create: " + std::strerror(errno));
    unsigned char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorToWrite& t : tensors) {
      out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(t.nbytes));
    }
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return DataLossError(tmp + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return FailedPreconditionError(path + ": rename failed: " + std::strerror(errno));
  }
  return OkStatus();
}

Status WriteSafetensorsDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                           size_t max_shard_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return FailedPreconditionError(dir + ": cannot create directory: " + ec.message());
  std::vector<std::vector<TensorToWrite>> shards(1);
  size_t current = 0, total = 0;
  for (const TensorToWrite& t : tensors) {
    if (current > 0 && current + t.nbytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(t);
    current += t.nbytes;
    total += t.nbytes;
  }
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  // A stale index from an earlier sharded save would shadow a single file.
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  if (shards.size() == 1) {
    fs::remove(index_path, ec);
    return WriteSafetensors((fs::path(dir) / "model.safetensors").string(), shards[0], meta);
  }
  Json weight_map = Json::MakeObject();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    Status s = WriteSafetensors((fs::path(dir) / name).string(), shards[i], meta);
    if (!s.ok()) return s;
    for (const TensorToWrite& t : shards[i]) weight_map[t.name] = std::string(name);
  }
  Json index = Json::MakeObject();
  index["metadata"]["total_size"] = Json(static_cast<int64_t>(total));
  index["weight_map"] = weight_map;
  Status s = WriteStringToFile(index_path, index.Dump(2) + "\n");
  if (!s.ok()) return s;
  fs::remove((fs::path(dir) / "model.safetensors").string(), ec);
  return OkStatus();
}

}  // namespace cascade::model
