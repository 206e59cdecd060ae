#include "model/transformer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <catch2/catch.hpp>

#include "model/test_util.h"

namespace cascade::model {
namespace {

std::unique_ptr<Transformer> TinyTransformer(Arch arch) {
  DeviceOptions d;
  d.num_threads = 2;
  auto t = Transformer::CreateRandom(testing::TinyConfig(arch), InitOptions{5, 0.3}, d);
  REQUIRE(t.ok());
  return std::move(*t);
}

// Two right-padded rows of different lengths.
std::pair<at::Tensor, at::Tensor> Batch() {
  at::Tensor ids = at::tensor(std::vector<int64_t>{5, 9, 300, 7, 7, 42, 1, 2, 3, 4,  //
                                                   8, 800, 13, 0, 0, 0, 0, 0, 0, 0},
                              at::kLong)
                       .view({2, 10});
  at::Tensor valid = ids.clone().fill_(1).to(at::kBool);
  valid.select(0, 1).narrow(0, 3, 7).fill_(false);
  return {ids, valid};
}

std::map<std::string, at::Tensor> Grads(const Transformer& t, int64_t chunk, bool checkpoint) {
  for (const auto& [name, p] : t.named_parameters()) {
    p.requires_grad_(true);
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
  auto [ids, valid] = Batch();
  at::Tensor lp = t.TokenLogProbs(ids, valid, chunk, checkpoint);
  // A weighted sum, as in the GRPO loss, so every position matters differently.
  at::Tensor w = at::linspace(-1, 2, lp.size(1)).unsqueeze(0);
  (lp * w).sum().backward();
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, p] : t.named_parameters()) grads[name] = p.grad().clone();
  return grads;
}

TEST_CASE("chunked and checkpointed log-prob gradients equal the plain ones", "[model][train]") {
  for (Arch arch : {Arch::kQwen3, Arch::kLlama}) {
    auto t = TinyTransformer(arch);
    auto plain = Grads(*t, /*chunk=*/0, /*checkpoint=*/false);
    auto chunked = Grads(*t, /*chunk=*/3, /*checkpoint=*/true);
    REQUIRE(plain.size() == chunked.size());
    double largest = 0;
    for (const auto& [name, g] : plain) {
      INFO(name);
      REQUIRE(chunked[name].defined());
      CHECK(at::allclose(g, chunked[name], /*rtol=*/1e-4, /*atol=*/1e-5));
      largest = std::max(largest, g.abs().max().item<double>());
    }
    CHECK(largest > 1e-3);  // the gradients are not all zero
  }
}

TEST_CASE("training and scoring log-probs agree and padding scores zero", "[model][train]") {
  auto t = TinyTransformer(Arch::kQwen3);
  auto [ids, valid] = Batch();
  c10::NoGradGuard no_grad;
  at::Tensor a = t->TokenLogProbs(ids, valid, 4);
  at::Tensor b = t->ScoreTokenLogProbs(ids, valid, 3);
  CHECK(at::allclose(a, b, 1e-5, 1e-5));
  CHECK(a.select(0, 1).narrow(0, 2, 7).abs().sum().item<float>() == 0.0f);
  CHECK(a.select(0, 1).narrow(0, 0, 2).lt(0).all().item<bool>());
}

}  // namespace
}  // namespace cascade::model
