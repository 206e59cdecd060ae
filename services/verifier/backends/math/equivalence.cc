#include "services/verifier/backends/math/equivalence.h"

#include <cln/float.h>
#include <cln/integer.h>
#include <cln/rational.h>
#include <cln/real.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <map>
#include <optional>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cascade::verifier::math {
namespace {

using Complex = std::complex<double>;
using Env = std::map<std::string, Complex>;

// Exact powers stay exact only while the result has at most this many bits;
// beyond it (10^{10^{10}}) the checker falls back to floating point.
constexpr long kMaxExactBits = 1 << 16;
constexpr int kMaxDepth = 400;

std::optional<cln::cl_RA> Exact(const Node& node, int depth = 0) {
  if (depth > kMaxDepth) return std::nullopt;
  switch (node.kind) {
    case NodeKind::kNumber:
      return node.value;
    case NodeKind::kAdd: {
      cln::cl_RA sum = 0;
      for (const NodePtr& a : node.args) {
        auto v = Exact(*a, depth + 1);
        if (!v) return std::nullopt;
        sum = sum + *v;
      }
      return sum;
    }
    case NodeKind::kMul: {
      cln::cl_RA product = 1;
      for (const NodePtr& a : node.args) {
        auto v = Exact(*a, depth + 1);
        if (!v) return std::nullopt;
        product = product * *v;
      }
      return product;
    }
    case NodeKind::kPow: {
      auto base = Exact(*node.args[0], depth + 1);
      if (!base) return std::nullopt;
      auto exponent = Exact(*node.args[1], depth + 1);
      if (!exponent || cln::denominator(*exponent) != 1) return std::nullopt;
      cln::cl_I e = cln::numerator(*exponent);
      if (cln::abs(e) > 100000) {
        if (*base == 0 || *base == 1) return *base;
        return std::nullopt;
      }
      long n = cln::cl_I_to_long(e);
      long bits = std::max<long>(cln::integer_length(cln::numerator(*base)),
                                 cln::integer_length(cln::denominator(*base)));
      if (bits * std::labs(n) > kMaxExactBits) return std::nullopt;
      if (n < 0) {
        if (*base == 0) return std::nullopt;
        return cln::expt(cln::cl_RA(1) / *base, -n);
      }
      return cln::expt(*base, n);
    }
    default:
      return std::nullopt;
  }
}

double ToDouble(const cln::cl_RA& value) {
  // double_approx saturates to infinity on huge values instead of throwing.
  try {
    return cln::double_approx(value);
  } catch (...) {
    return cln::minusp(value) ? -INFINITY : INFINITY;
  }
}

bool EvalC(const Node& node, const Env& env, Complex* out, int depth = 0);

bool EvalArgs(const Node& node, const Env& env, std::vector<Complex>* values, int depth) {
  for (const NodePtr& a : node.args) {
    Complex v;
    if (!EvalC(*a, env, &v, depth + 1)) return false;
    values->push_back(v);
  }
  return true;
}

bool EvalC(const Node& node, const Env& env, Complex* out, int depth) {
  if (depth > kMaxDepth) return false;
  switch (node.kind) {
    case NodeKind::kNumber:
      *out = ToDouble(node.value);
      return true;
    case NodeKind::kSymbol: {
      auto it = env.find(node.name);
      if (it == env.end()) return false;
      *out = it->second;
      return true;
    }
    case NodeKind::kConstant:
      if (node.name == "pi") *out = M_PI;
      else if (node.name == "e") *out = M_E;
      else if (node.name == "i") *out = Complex(0, 1);
      else if (node.name == "inf") *out = INFINITY;
      else return false;
      return true;
    case NodeKind::kAdd: {
      std::vector<Complex> v;
      if (!EvalArgs(node, env, &v, depth)) return false;
      Complex sum = 0;
      for (const Complex& x : v) sum += x;
      *out = sum;
      return true;
    }
    case NodeKind::kMul: {
      std::vector<Complex> v;
      if (!EvalArgs(node, env, &v, depth)) return false;
      Complex product = 1;
      for (const Complex& x : v) product *= x;
      *out = product;
      return true;
    }
    case NodeKind::kPow: {
      std::vector<Complex> v;
      if (!EvalArgs(node, env, &v, depth)) return false;
      const Complex& b = v[0];
      const Complex& e = v[1];
      if (b.imag() == 0 && e.imag() == 0 && (b.real() >= 0 || e.real() == std::round(e.real()))) {
        *out = std::pow(b.real(), e.real());
      } else {
        *out = std::pow(b, e);
      }
      return true;
    }
    case NodeKind::kFunction: {
      std::vector<Complex> v;
      if (!EvalArgs(node, env, &v, depth)) return false;
      const std::string& f = node.name;
      if (v.empty()) return false;
      const Complex& x = v[0];
      bool real = x.imag() == 0;
      if (f == "sqrt") *out = real && x.real() >= 0 ? Complex(std::sqrt(x.real())) : std::sqrt(x);
      else if (f == "sin") *out = std::sin(x);
      else if (f == "cos") *out = std::cos(x);
      else if (f == "tan") *out = std::tan(x);
      else if (f == "sec") *out = 1.0 / std::cos(x);
      else if (f == "csc") *out = 1.0 / std::sin(x);
      else if (f == "cot") *out = 1.0 / std::tan(x);
      else if (f == "arcsin") *out = std::asin(x);
      else if (f == "arccos") *out = std::acos(x);
      else if (f == "arctan") *out = std::atan(x);
      else if (f == "sinh") *out = std::sinh(x);
      else if (f == "cosh") *out = std::cosh(x);
      else if (f == "tanh") *out = std::tanh(x);
      else if (f == "exp") *out = std::exp(x);
      else if (f == "abs") *out = std::abs(x);
      else if (f == "log") {
        *out = real && x.real() > 0 ? Complex(std::log(x.real())) : std::log(x);
        if (v.size() == 2) *out /= std::log(v[1]);
      } else if (f == "factorial") {
        if (!real || x.real() < 0 || x.real() > 170) return false;
        *out = std::tgamma(x.real() + 1);
      } else if (f == "binom" && v.size() == 2) {
        if (!real || v[1].imag() != 0) return false;
        double n = x.real(), k = v[1].real();
        *out = std::exp(std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1));
        *out = std::round(out->real());
      } else if (f == "floor" && real) *out = std::floor(x.real());
      else if (f == "ceil" && real) *out = std::ceil(x.real());
      else return false;
      return true;
    }
    default:
      return false;
  }
}

bool Finite(const Complex& c) { return std::isfinite(c.real()) && std::isfinite(c.imag()); }

bool Close(const Complex& a, const Complex& b, double tolerance) {
  double scale = std::max({1.0, std::abs(a), std::abs(b)});
  return std::abs(a - b) <= tolerance * scale;
}

// Rounds both to `precision` decimal places and compares.
bool RoundedEqual(double a, double b, int precision) {
  double scale = std::pow(10.0, precision);
  double sa = a * scale, sb = b * scale;
  if (std::fabs(sa) < 1e15 && std::fabs(sb) < 1e15) {
    if (std::nearbyint(sa) == std::nearbyint(sb)) return true;
    // Binary noise right at a rounding boundary (4.1231056 computed vs
    // written) must not decide the verdict.
    return std::fabs(sa - sb) < 1e-6;
  }
  return std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b));
}

class Comparator {
 public:
  Comparator(const MathOptions& options, const CancelToken& cancel)
      : options_(options), cancel_(cancel) {}

  absl::StatusOr<bool> Equal(NodePtr gold, NodePtr pred, int depth, std::string* how);

 private:
  absl::StatusOr<bool> ScalarEqual(const Node& gold, const Node& pred, std::string* how);
  absl::StatusOr<bool> SetsEqual(const NodePtr& gold, const NodePtr& pred, int depth,
                                 std::string* how);
  absl::StatusOr<bool> RelationsEqual(const Node& gold, const Node& pred, std::string* how);
  absl::Status ProportionalAt(const Node& a, const Node& b, bool positive,
                              bool* proportional);
  absl::StatusOr<bool> OrderedEqual(const std::vector<NodePtr>& a, const std::vector<NodePtr>& b,
                                    int depth);
  absl::StatusOr<bool> UnorderedEqual(const std::vector<NodePtr>& a,
                                      const std::vector<NodePtr>& b, int depth);
  std::vector<Env> RandomPoints(const Node& a, const Node& b, int count, bool negative);

  const MathOptions& options_;
  const CancelToken& cancel_;
};

bool IsRelation(const Node& node) { return node.kind == NodeKind::kRelation; }

bool IsEquation(const Node& node) {
  return IsRelation(node) &&
         std::all_of(node.ops.begin(), node.ops.end(), [](RelOp op) { return op == RelOp::kEq; });
}

bool IsAssignment(const Node& node) { return IsEquation(node) && IsOnlySymbols(*node.args[0]); }

// Converts a one-variable relation chain to the set it describes
// (`-2 <= x <= 7` -> [-2, 7]); null when it is not of that shape.
NodePtr RelationToSet(const Node& node) {
  if (!IsRelation(node)) return nullptr;
  auto infinity = [](bool negative) {
    NodePtr inf = MakeConstant("inf");
    return negative ? Neg(inf) : inf;
  };
  auto lower_bound = [](RelOp op) { return op == RelOp::kLt || op == RelOp::kLe; };
  if (node.args.size() == 3 && node.args[1]->kind == NodeKind::kSymbol) {
    RelOp a = node.ops[0], b = node.ops[1];
    if (lower_bound(a) && lower_bound(b)) {
      return MakeInterval(node.args[0], node.args[2], a == RelOp::kLt, b == RelOp::kLt);
    }
    if (!lower_bound(a) && !lower_bound(b) && (a == RelOp::kGt || a == RelOp::kGe) &&
        (b == RelOp::kGt || b == RelOp::kGe)) {
      return MakeInterval(node.args[2], node.args[0], b == RelOp::kGt, a == RelOp::kGt);
    }
    return nullptr;
  }
  if (node.args.size() != 2) return nullptr;
  NodePtr var = node.args[0], bound = node.args[1];
  RelOp op = node.ops[0];
  if (var->kind != NodeKind::kSymbol) {
    if (bound->kind != NodeKind::kSymbol) return nullptr;
    std::swap(var, bound);
    switch (op) {
      case RelOp::kLt: op = RelOp::kGt; break;
      case RelOp::kLe: op = RelOp::kGe; break;
      case RelOp::kGt: op = RelOp::kLt; break;
      case RelOp::kGe: op = RelOp::kLe; break;
      default: break;
    }
  }
  switch (op) {
    case RelOp::kEq: return MakeNode(NodeKind::kSet, {bound});
    case RelOp::kLt: return MakeInterval(infinity(true), bound, true, true);
    case RelOp::kLe: return MakeInterval(infinity(true), bound, true, false);
    case RelOp::kGt: return MakeInterval(bound, infinity(false), true, true);
    case RelOp::kGe: return MakeInterval(bound, infinity(false), false, true);
    case RelOp::kNe:
      return MakeNode(NodeKind::kUnion, {MakeInterval(infinity(true), bound, true, true),
                                         MakeInterval(bound, infinity(false), true, true)});
    default: return nullptr;
  }
}

// The concatenated name of a symbol or a product of symbols ("abc").
std::optional<std::string> SymbolWord(const Node& node) {
  if (node.kind == NodeKind::kSymbol) return node.name;
  if (node.kind == NodeKind::kConstant && node.name == "e") return std::string("e");
  if (node.kind == NodeKind::kMul) {
    std::string word;
    for (const NodePtr& a : node.args) {
      auto part = SymbolWord(*a);
      if (!part || a->kind == NodeKind::kMul) return std::nullopt;
      word += *part;
    }
    return word;
  }
  return std::nullopt;
}

// Reduces sums and products of matrices to one matrix; null otherwise.
NodePtr AsMatrix(const NodePtr& node, int depth = 0) {
  if (depth > 50) return nullptr;
  if (node->kind == NodeKind::kMatrix) return node;
  if ((node->kind == NodeKind::kTuple || node->kind == NodeKind::kList) && node->args.size() == 1) {
    return AsMatrix(node->args[0], depth + 1);
  }
  if (node->kind == NodeKind::kAdd) {
    NodePtr sum;
    for (const NodePtr& a : node->args) {
      NodePtr m = AsMatrix(a, depth + 1);
      if (!m) return nullptr;
      if (!sum) {
        sum = m;
        continue;
      }
      if (sum->rows != m->rows || sum->cols != m->cols) return nullptr;
      std::vector<NodePtr> cells;
      for (size_t i = 0; i < m->args.size(); ++i) {
        cells.push_back(MakeNode(NodeKind::kAdd, {sum->args[i], m->args[i]}));
      }
      sum = MakeMatrix(m->rows, m->cols, std::move(cells));
    }
    return sum;
  }
  if (node->kind == NodeKind::kMul) {
    NodePtr product;
    std::vector<NodePtr> scalars;
    for (const NodePtr& a : node->args) {
      NodePtr m = AsMatrix(a, depth + 1);
      if (!m) {
        scalars.push_back(a);
        continue;
      }
      if (!product) {
        product = m;
        continue;
      }
      if (product->cols != m->rows) return nullptr;
      std::vector<NodePtr> cells;
      for (int r = 0; r < product->rows; ++r) {
        for (int c = 0; c < m->cols; ++c) {
          std::vector<NodePtr> terms;
          for (int k = 0; k < product->cols; ++k) {
            terms.push_back(MakeNode(NodeKind::kMul, {product->args[r * product->cols + k],
                                                      m->args[k * m->cols + c]}));
          }
          cells.push_back(MakeNode(NodeKind::kAdd, std::move(terms)));
        }
      }
      product = MakeMatrix(product->rows, m->cols, std::move(cells));
    }
    if (!product) return nullptr;
    if (scalars.empty()) return product;
    std::vector<NodePtr> cells;
    for (const NodePtr& cell : product->args) {
      std::vector<NodePtr> factors = scalars;
      factors.push_back(cell);
      cells.push_back(MakeNode(NodeKind::kMul, std::move(factors)));
    }
    return MakeMatrix(product->rows, product->cols, std::move(cells));
  }
  return nullptr;
}

std::vector<Env> Comparator::RandomPoints(const Node& a, const Node& b, int count,
                                          bool negative) {
  std::vector<std::string> symbols;
  CollectSymbols(a, &symbols);
  CollectSymbols(b, &symbols);
  // Seeded per call: the verdict must not depend on the thread or the run.
  std::mt19937_64 rng(0x5eed + symbols.size());
  std::uniform_real_distribution<double> dist(0.35, 2.65);
  std::vector<Env> points;
  for (int i = 0; i < count; ++i) {
    Env env;
    for (const std::string& s : symbols) env[s] = negative ? -dist(rng) : dist(rng);
    points.push_back(std::move(env));
  }
  return points;
}

absl::StatusOr<bool> Comparator::ScalarEqual(const Node& gold, const Node& pred,
                                             std::string* how) {
  bool has_float = ContainsFloat(gold) || ContainsFloat(pred);
  std::vector<std::string> symbols;
  CollectSymbols(gold, &symbols);
  CollectSymbols(pred, &symbols);
  if (!has_float) {
    auto a = Exact(gold);
    auto b = Exact(pred);
    if (a && b) {
      if (how) *how = "exact";
      return *a == *b;
    }
  }
  if (symbols.empty()) {
    Complex a, b;
    if (!EvalC(gold, {}, &a) || !EvalC(pred, {}, &b)) return false;
    if (!Finite(a) || !Finite(b)) {
      // Only a written infinity equals infinity; an overflowing power
      // (10^{10^{10}}) decides nothing.
      auto is_inf = [](const Node& n) {
        std::string s = ToString(n);
        return s == "inf" || s == "(-1*inf)";
      };
      return is_inf(gold) && is_inf(pred) && ToString(gold) == ToString(pred);
    }
    if (has_float && std::fabs(a.imag()) < 1e-12 && std::fabs(b.imag()) < 1e-12) {
      if (how) *how = "numeric";
      return RoundedEqual(a.real(), b.real(), options_.precision);
    }
    if (how) *how = "numeric";
    return Close(a, b, 1e-9);
  }
  // Free variables: agree at random points. Negative points guard against
  // identities that hold only for positive values (|x| vs x) and count only
  // where both sides are real.
  double tolerance = has_float ? std::pow(10.0, -options_.precision) : 1e-8;
  int agreed = 0;
  for (const Env& env : RandomPoints(gold, pred, 6, false)) {
    RETURN_IF_ERROR(cancel_.Check());
    Complex a, b;
    if (!EvalC(gold, env, &a) || !EvalC(pred, env, &b)) return false;
    if (!Finite(a) || !Finite(b)) continue;
    if (!Close(a, b, tolerance)) return false;
    ++agreed;
  }
  if (agreed < 3) return false;
  for (const Env& env : RandomPoints(gold, pred, 2, true)) {
    Complex a, b;
    if (!EvalC(gold, env, &a) || !EvalC(pred, env, &b)) continue;
    if (!Finite(a) || !Finite(b)) continue;
    if (std::fabs(a.imag()) > 1e-9 || std::fabs(b.imag()) > 1e-9) continue;
    if (!Close(a, b, tolerance)) return false;
  }
  if (how) *how = "symbolic";
  return true;
}

absl::Status Comparator::ProportionalAt(const Node& a, const Node& b, bool positive,
                                                bool* proportional) {
  *proportional = false;
  std::vector<Env> points = RandomPoints(a, b, 6, false);
  std::optional<Complex> ratio;
  int checked = 0;
  bool all_zero = true;
  for (const Env& env : points) {
    RETURN_IF_ERROR(cancel_.Check());
    Complex va, vb;
    if (!EvalC(a, env, &va) || !EvalC(b, env, &vb)) return absl::OkStatus();
    if (!Finite(va) || !Finite(vb)) continue;
    bool za = std::abs(va) < 1e-12, zb = std::abs(vb) < 1e-12;
    if (za && zb) continue;
    all_zero = false;
    if (za || zb) return absl::OkStatus();
    Complex r = va / vb;
    if (ratio && !Close(r, *ratio, 1e-8)) return absl::OkStatus();
    ratio = r;
    ++checked;
  }
  if (all_zero) {
    *proportional = true;
    return absl::OkStatus();
  }
  if (!ratio || checked == 0) return absl::OkStatus();
  if (positive && !(std::fabs(ratio->imag()) < 1e-9 && ratio->real() > 0)) return absl::OkStatus();
  *proportional = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> Comparator::RelationsEqual(const Node& gold, const Node& pred,
                                                std::string* how) {
  if (gold.ops.size() != pred.ops.size()) return false;
  // Each link as (difference, kind): a < b is b - a > 0.
  enum Kind { kEq, kNe, kGt, kGe, kIn };
  auto link = [](const Node& n, size_t i, NodePtr* diff) {
    const NodePtr& l = n.args[i];
    const NodePtr& r = n.args[i + 1];
    switch (n.ops[i]) {
      case RelOp::kEq: case RelOp::kApprox: *diff = Sub(l, r); return kEq;
      case RelOp::kNe: *diff = Sub(l, r); return kNe;
      case RelOp::kLt: *diff = Sub(r, l); return kGt;
      case RelOp::kLe: *diff = Sub(r, l); return kGe;
      case RelOp::kGt: *diff = Sub(l, r); return kGt;
      case RelOp::kGe: *diff = Sub(l, r); return kGe;
      case RelOp::kIn: *diff = Sub(l, r); return kIn;
    }
    return kIn;
  };
  for (size_t i = 0; i < gold.ops.size(); ++i) {
    NodePtr dg, dp;
    Kind kg = link(gold, i, &dg);
    Kind kp = link(pred, i, &dp);
    if (kg != kp || kg == kIn) return false;
    bool proportional = false;
    RETURN_IF_ERROR(ProportionalAt(*dg, *dp, /*positive=*/kg == kGt || kg == kGe, &proportional));
    if (!proportional) return false;
  }
  if (how) *how = "relation";
  return true;
}

absl::StatusOr<bool> Comparator::OrderedEqual(const std::vector<NodePtr>& a,
                                              const std::vector<NodePtr>& b, int depth) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSIGN_OR_RETURN(bool same, Equal(a[i], b[i], depth + 1, nullptr));
    if (!same) return false;
  }
  return true;
}

absl::StatusOr<bool> Comparator::UnorderedEqual(const std::vector<NodePtr>& a,
                                                const std::vector<NodePtr>& b, int depth) {
  if (a.size() != b.size()) return false;
  std::vector<bool> used(b.size(), false);
  for (const NodePtr& x : a) {
    bool found = false;
    for (size_t j = 0; j < b.size() && !found; ++j) {
      if (used[j]) continue;
      ASSIGN_OR_RETURN(bool same, Equal(x, b[j], depth + 1, nullptr));
      if (same) used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

absl::StatusOr<bool> Comparator::SetsEqual(const NodePtr& gold_in, const NodePtr& pred_in,
                                           int depth, std::string* how) {
  auto wrap = [](const NodePtr& n) {
    return IsSetLike(*n) ? n : MakeNode(NodeKind::kSet, {n});
  };
  NodePtr gold = wrap(gold_in), pred = wrap(pred_in);
  if (how) *how = "set";
  NodeKind g = gold->kind, p = pred->kind;
  auto is_finite = [](NodeKind k) {
    return k == NodeKind::kSet || k == NodeKind::kList || k == NodeKind::kTuple;
  };
  if (g == NodeKind::kInterval && p == NodeKind::kInterval) {
    if (gold->left_open != pred->left_open || gold->right_open != pred->right_open) return false;
    return OrderedEqual(gold->args, pred->args, depth);
  }
  if (g == NodeKind::kUnion && p == NodeKind::kUnion) {
    return UnorderedEqual(gold->args, pred->args, depth);
  }
  if (is_finite(g) && is_finite(p)) {
    if (g == NodeKind::kTuple) return OrderedEqual(gold->args, pred->args, depth);
    return UnorderedEqual(gold->args, pred->args, depth);
  }
  // (1, 2) as an open interval against the pair 1, 2.
  if (g == NodeKind::kInterval && is_finite(p) && gold->left_open && gold->right_open) {
    return OrderedEqual(gold->args, pred->args, depth);
  }
  if (p == NodeKind::kInterval && is_finite(g) && pred->left_open && pred->right_open) {
    return OrderedEqual(gold->args, pred->args, depth);
  }
  return false;
}

absl::StatusOr<bool> Comparator::Equal(NodePtr gold, NodePtr pred, int depth, std::string* how) {
  RETURN_IF_ERROR(cancel_.Check());
  if (depth > 60) return false;

  if (!options_.strict) {
    // Rename the prediction's variables onto the gold's: shared names stay,
    // the rest pair up in sorted order.
    std::vector<std::string> gs, ps;
    CollectSymbols(*gold, &gs);
    CollectSymbols(*pred, &ps);
    if (gs.size() == ps.size() && gs != ps) {
      std::vector<std::string> g_only, p_only;
      std::set_difference(gs.begin(), gs.end(), ps.begin(), ps.end(), std::back_inserter(g_only));
      std::set_difference(ps.begin(), ps.end(), gs.begin(), gs.end(), std::back_inserter(p_only));
      std::vector<std::pair<std::string, std::string>> map;
      for (size_t i = 0; i < p_only.size() && i < g_only.size(); ++i) {
        map.emplace_back(p_only[i], g_only[i]);
      }
      pred = RenameSymbols(pred, map);
    }
  }

  // Assignments: `k = 1` against `1` compares the value; two assignments
  // compare as `first lhs = last rhs`.
  bool gold_assign = IsAssignment(*gold), pred_assign = IsAssignment(*pred);
  // An assignment against another relation stays a relation:
  // `2x + 4y - 3 = 0` vs `y = -x/2 + 3/4`.
  if (gold_assign && !pred_assign && !IsRelation(*pred)) gold = gold->args.back();
  if (pred_assign && !gold_assign && !IsRelation(*gold)) pred = pred->args.back();
  if (gold_assign && pred_assign) {
    gold = MakeRelation({gold->args.front(), gold->args.back()}, {RelOp::kEq});
    pred = MakeRelation({pred->args.front(), pred->args.back()}, {RelOp::kEq});
  } else if (IsEquation(*pred) && !IsEquation(*gold)) {
    // Respect the gold: `1` against `7 + 1 = 1` reads the last value.
    pred = pred->args.back();
  }

  if (IsRelation(*gold) && IsSetLike(*pred)) {
    if (NodePtr as_set = RelationToSet(*gold)) gold = as_set;
  } else if (options_.allow_set_relation_comp && IsSetLike(*gold) && IsRelation(*pred)) {
    if (NodePtr as_set = RelationToSet(*pred)) pred = as_set;
  }

  if (ToString(*gold) == ToString(*pred)) {
    if (how) *how = "exact";
    return true;
  }
  if (IsRelation(*gold) || IsRelation(*pred)) {
    if (!IsRelation(*gold) || !IsRelation(*pred)) return false;
    return RelationsEqual(*gold, *pred, how);
  }
  if (IsSetLike(*gold) || IsSetLike(*pred)) return SetsEqual(gold, pred, depth, how);

  NodePtr gm = AsMatrix(gold), pm = AsMatrix(pred);
  if (gm || pm) {
    if (!gm || !pm || gm->rows != pm->rows || gm->cols != pm->cols) return false;
    ASSIGN_OR_RETURN(bool same, OrderedEqual(gm->args, pm->args, depth));
    if (how) *how = "matrix";
    return same;
  }

  // Words and names: \text{Evelyn} vs Evelyn, E vs e.
  bool gold_symbol = gold->kind == NodeKind::kSymbol;
  bool pred_symbol = pred->kind == NodeKind::kSymbol;
  if (gold_symbol || pred_symbol) {
    auto gw = SymbolWord(*gold), pw = SymbolWord(*pred);
    if (!gw || !pw) return false;
    std::string a = *gw, b = *pw;
    if (a.size() > 1 || b.size() > 1 || a == "e" || a == "E" || b == "e" || b == "E") {
      a = absl::AsciiStrToLower(a);
      b = absl::AsciiStrToLower(b);
    }
    if (how) *how = "exact";
    return a == b;
  }
  return ScalarEqual(*gold, *pred, how);
}

}  // namespace

absl::StatusOr<bool> ExprsEquivalent(const NodePtr& gold, const NodePtr& pred,
                                     const MathOptions& options, const CancelToken& cancel,
                                     std::string* how) {
  Comparator comparator(options, cancel);
  return comparator.Equal(gold, pred, 0, how);
}

absl::StatusOr<bool> AnswersEquivalent(const Answer& gold, const Answer& pred,
                                       const MathOptions& options, const CancelToken& cancel,
                                       MatchInfo* info) {
  for (const NodePtr& g : gold.exprs) {
    for (const NodePtr& p : pred.exprs) {
      std::string how;
      ASSIGN_OR_RETURN(bool same, ExprsEquivalent(g, p, options, cancel, &how));
      if (same) {
        if (info) *info = {how, ToString(*g), ToString(*p)};
        return true;
      }
    }
  }
  for (const std::string& g : gold.strings) {
    std::string gs(absl::StripAsciiWhitespace(g));
    for (const std::string& p : pred.strings) {
      std::string ps(absl::StripAsciiWhitespace(p));
      if (!gs.empty() && gs == ps) {
        if (info) *info = {"string", gs, ps};
        return true;
      }
    }
  }
  return false;
}

}  // namespace cascade::verifier::math
