#include "model/safetensors.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/json.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;

std::string TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "safetensors_test_XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

std::vector<TensorToWrite> Sample(const std::vector<float>& a, const std::vector<uint16_t>& b) {
  return {TensorToWrite{"a", DType::kF32, {2, 3}, a.data(), a.size() * 4},
          TensorToWrite{"b.bias", DType::kBF16, {4}, b.data(), b.size() * 2}};
}

TEST_CASE("safetensors round-trips tensors and metadata through a memory-mapped file",
          "[model][safetensors]") {
  const std::string dir = TempDir();
  std::vector<float> a = {1, 2, 3, 4, 5, 6.5f};
  std::vector<uint16_t> b = {0x3f80, 0x4000, 0xbf80, 0};
  const std::string path = dir + "/x.safetensors";
  REQUIRE(WriteSafetensors(path, Sample(a, b), {{"format", "pt"}}).ok());

  // The header length is little-endian and the data starts 8-byte aligned.
  std::string raw = *ReadFileToString(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK((8 + n) % 8 == 0);
  CHECK(raw.size() == 8 + n + 24 + 8);

  auto f = SafetensorsFile::Open(path);
  REQUIRE(f.ok());
  CHECK((*f)->metadata().at("format") == "pt");
  const TensorView* va = (*f)->Find("a");
  REQUIRE(va != nullptr);
  CHECK(va->shape == std::vector<int64_t>{2, 3});
  CHECK(std::memcmp(va->data, a.data(), 24) == 0);
  const TensorView* vb = (*f)->Find("b.bias");
  REQUIRE(vb != nullptr);
  CHECK(vb->dtype == DType::kBF16);
  CHECK(std::memcmp(vb->data, b.data(), 8) == 0);
  fs::remove_all(dir);
}

TEST_CASE("safetensors rejects truncated and corrupt files with the file name", "[model][safetensors]") {
  const std::string dir = TempDir();
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {1, 2, 3, 4};
  const std::string path = dir + "/x.safetensors";
  REQUIRE(WriteSafetensors(path, Sample(a, b)).ok());
  const std::string good = *ReadFileToString(path);

  // Truncated data: the last tensor runs past the end.
  REQUIRE(WriteStringToFile(path, good.substr(0, good.size() - 3)).ok());
  auto f = SafetensorsFile::Open(path);
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().code() == StatusCode::kDataLoss);
  CHECK(f.status().message().find(path) != std::string::npos);
  CHECK(f.status().message().find("truncated") != std::string::npos);

  // Truncated inside the header length / header.
  REQUIRE(WriteStringToFile(path, good.substr(0, 5)).ok());
  CHECK_FALSE(SafetensorsFile::Open(path).ok());
  REQUIRE(WriteStringToFile(path, good.substr(0, 20)).ok());
  CHECK(SafetensorsFile::Open(path).status().message().find("header") != std::string::npos);

  // Garbage header bytes.
  std::string bad = good;
  bad[8] = 'x';
  REQUIRE(WriteStringToFile(path, bad).ok());
  CHECK(SafetensorsFile::Open(path).status().code() == StatusCode::kDataLoss);

  // A shape that disagrees with the offsets.
  std::string shape_bad = good;
  size_t at = shape_bad.find("[2,3]");
  REQUIRE(at != std::string::npos);
  shape_bad.replace(at, 5, "[3,3]");
  REQUIRE(WriteStringToFile(path, shape_bad).ok());
  auto g = SafetensorsFile::Open(path);
  REQUIRE_FALSE(g.ok());
  CHECK(g.status().message().find("tensor \"a\"") != std::string::npos);

  CHECK(SafetensorsFile::Open(dir + "/missing.safetensors").status().code() == StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST_CASE("safetensors shards a large checkpoint with an index that loads back", "[model][safetensors]") {
  const std::string dir = TempDir();
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < 5; ++i) data.push_back(std::vector<float>(100, static_cast<float>(i)));
  for (int i = 0; i < 5; ++i) {
    tensors.push_back({"t" + std::to_string(i), DType::kF32, {10, 10}, data[i].data(), 400});
  }
  REQUIRE(WriteSafetensorsDir(dir, tensors, /*max_shard_bytes=*/1000).ok());
  CHECK(fs::exists(dir + "/model.safetensors.index.json"));
  CHECK(fs::exists(dir + "/model-00001-of-00003.safetensors"));
  CHECK_FALSE(fs::exists(dir + "/model.safetensors"));
  Json index = *Json::Parse(*ReadFileToString(dir + "/model.safetensors.index.json"));
  CHECK(index.Find("metadata")->Find("total_size")->as_int() == 2000);

  auto ckpt = SafetensorsCheckpoint::OpenDir(dir);
  REQUIRE(ckpt.ok());
  CHECK(ckpt->Names().size() == 5);
  const TensorView* t4 = ckpt->Find("t4");
  REQUIRE(t4 != nullptr);
  CHECK(static_cast<const float*>(t4->data)[99] == 4.0f);
  CHECK(ckpt->FileOf("t4").find("model-00003-of-00003") != std::string::npos);

  // A shard that the index names but that is gone.
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  auto broken = SafetensorsCheckpoint::OpenDir(dir);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().message().find("model-00002-of-00003") != std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cascade::model
