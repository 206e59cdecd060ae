#include "services/verifier/backends/math/ast.h"

#include <cln/integer_io.h>
#include <cln/rational_io.h>

#include <algorithm>
#include <sstream>

namespace cascade::verifier::math {

NodePtr MakeNumber(const cln::cl_RA& value, bool is_float) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kNumber;
  node->value = value;
  node->is_float = is_float;
  return node;
}

NodePtr MakeSymbol(std::string name) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kSymbol;
  node->name = std::move(name);
  return node;
}

NodePtr MakeConstant(std::string name) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kConstant;
  node->name = std::move(name);
  return node;
}

NodePtr MakeNode(NodeKind kind, std::vector<NodePtr> args) {
  auto node = std::make_shared<Node>();
  node->kind = kind;
  node->args = std::move(args);
  return node;
}

NodePtr MakeFunction(std::string name, std::vector<NodePtr> args) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kFunction;
  node->name = std::move(name);
  node->args = std::move(args);
  return node;
}

NodePtr MakeRelation(std::vector<NodePtr> operands, std::vector<RelOp> ops) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kRelation;
  node->args = std::move(operands);
  node->ops = std::move(ops);
  return node;
}

NodePtr MakeInterval(NodePtr lo, NodePtr hi, bool left_open, bool right_open) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kInterval;
  node->args = {std::move(lo), std::move(hi)};
  node->left_open = left_open;
  node->right_open = right_open;
  return node;
}

NodePtr MakeMatrix(int rows, int cols, std::vector<NodePtr> cells) {
  auto node = std::make_shared<Node>();
  node->kind = NodeKind::kMatrix;
  node->rows = rows;
  node->cols = cols;
  node->args = std::move(cells);
  return node;
}

NodePtr Neg(NodePtr a) {
  if (a->kind == NodeKind::kNumber) {
    auto node = std::make_shared<Node>(*a);
    node->value = -a->value;
    return node;
  }
  return MakeNode(NodeKind::kMul, {MakeNumber(-1), std::move(a)});
}

NodePtr Sub(NodePtr a, NodePtr b) {
  return MakeNode(NodeKind::kAdd, {std::move(a), Neg(std::move(b))});
}

NodePtr Div(NodePtr a, NodePtr b) {
  return MakeNode(NodeKind::kMul,
                  {std::move(a), MakeNode(NodeKind::kPow, {std::move(b), MakeNumber(-1)})});
}

std::string RelOpString(RelOp op) {
  switch (op) {
    case RelOp::kEq: return "=";
    case RelOp::kNe: return "!=";
    case RelOp::kLt: return "<";
    case RelOp::kLe: return "<=";
    case RelOp::kGt: return ">";
    case RelOp::kGe: return ">=";
    case RelOp::kApprox: return "~=";
    case RelOp::kIn: return " in ";
  }
  return "?";
}

namespace {

void Render(const Node& node, std::ostringstream& out) {
  auto join = [&](const char* open, const char* sep, const char* close) {
    out << open;
    for (size_t i = 0; i < node.args.size(); ++i) {
      if (i) out << sep;
      Render(*node.args[i], out);
    }
    out << close;
  };
  switch (node.kind) {
    case NodeKind::kNumber:
      if (node.is_float) {
        out << cln::double_approx(node.value);
      } else {
        out << node.value;
      }
      return;
    case NodeKind::kSymbol:
    case NodeKind::kConstant:
      out << node.name;
      return;
    case NodeKind::kAdd: join("(", " + ", ")"); return;
    case NodeKind::kMul: join("(", "*", ")"); return;
    case NodeKind::kPow: join("(", "^", ")"); return;
    case NodeKind::kPlusMinus: join("(", " +- ", ")"); return;
    case NodeKind::kFunction:
      out << node.name;
      join("(", ", ", ")");
      return;
    case NodeKind::kRelation:
      for (size_t i = 0; i < node.args.size(); ++i) {
        if (i) out << " " << RelOpString(node.ops[i - 1]) << " ";
        Render(*node.args[i], out);
      }
      return;
    case NodeKind::kSet: join("{", ", ", "}"); return;
    case NodeKind::kList: join("", ", ", ""); return;
    case NodeKind::kTuple: join("(", ", ", ")"); return;
    case NodeKind::kInterval:
      out << (node.left_open ? "(" : "[");
      Render(*node.args[0], out);
      out << ", ";
      Render(*node.args[1], out);
      out << (node.right_open ? ")" : "]");
      return;
    case NodeKind::kUnion: join("", " U ", ""); return;
    case NodeKind::kMatrix:
      out << "Matrix[";
      for (int r = 0; r < node.rows; ++r) {
        if (r) out << "; ";
        for (int c = 0; c < node.cols; ++c) {
          if (c) out << ", ";
          Render(*node.args[r * node.cols + c], out);
        }
      }
      out << "]";
      return;
  }
}

}  // namespace

std::string ToString(const Node& node) {
  std::ostringstream out;
  Render(node, out);
  return out.str();
}

bool IsSetLike(const Node& node) {
  switch (node.kind) {
    case NodeKind::kSet:
    case NodeKind::kList:
    case NodeKind::kTuple:
    case NodeKind::kInterval:
    case NodeKind::kUnion:
      return true;
    default:
      return false;
  }
}

bool IsOnlySymbols(const Node& node) {
  if (node.kind == NodeKind::kSymbol) return true;
  if (node.kind == NodeKind::kMul) {
    return std::all_of(node.args.begin(), node.args.end(), [](const NodePtr& a) {
      return a->kind == NodeKind::kSymbol || a->kind == NodeKind::kTuple ||
             (a->kind == NodeKind::kConstant && a->name == "e");
    });
  }
  return false;
}

bool ContainsFloat(const Node& node) {
  if (node.kind == NodeKind::kNumber) return node.is_float;
  return std::any_of(node.args.begin(), node.args.end(),
                     [](const NodePtr& a) { return ContainsFloat(*a); });
}

void CollectSymbols(const Node& node, std::vector<std::string>* out) {
  if (node.kind == NodeKind::kSymbol) {
    auto it = std::lower_bound(out->begin(), out->end(), node.name);
    if (it == out->end() || *it != node.name) out->insert(it, node.name);
    return;
  }
  for (const NodePtr& a : node.args) CollectSymbols(*a, out);
}

NodePtr RenameSymbols(const NodePtr& node,
                      const std::vector<std::pair<std::string, std::string>>& map) {
  if (node->kind == NodeKind::kSymbol) {
    for (const auto& [from, to] : map) {
      if (node->name == from) return MakeSymbol(to);
    }
    return node;
  }
  if (node->args.empty()) return node;
  auto copy = std::make_shared<Node>(*node);
  for (NodePtr& a : copy->args) a = RenameSymbols(a, map);
  return copy;
}

}  // namespace cascade::verifier::math
