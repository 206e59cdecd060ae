// The expression tree shared by the math backend's parser, normalizer and
// equivalence checker.
//
// Nodes are immutable and shared (NodePtr), so sub-trees can be reused when
// an answer is rewritten (e.g. `x = 1` unwrapped to `1`). Numbers are exact
// rationals (CLN); a decimal literal keeps its exact value and is flagged as a
// float so the checker knows to compare it to the `precision` option.
//
// Thread-safety: nodes are immutable after construction; safe to share.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_AST_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_AST_H_

#include <cln/rational.h>

#include <memory>
#include <string>
#include <vector>

namespace cascade::verifier::math {

enum class NodeKind {
  kNumber,     // rational value; is_float for decimal literals
  kSymbol,     // a variable or a word (\text{Evelyn}); `name`
  kConstant,   // "pi", "e", "i", "inf"
  kAdd,        // sum of args
  kMul,        // product of args
  kPow,        // args[0] ^ args[1]
  kFunction,   // `name`(args): sin, cos, sqrt, log, abs, ...
  kPlusMinus,  // args[0] ± args[1]; expanded into a set before comparison
  kRelation,   // chain args[0] ops[0] args[1] ops[1] ... args[n]
  kSet,        // {a, b}: order-insensitive
  kList,       // bare `a, b`: a set that remembers the written order
  kTuple,      // (a, b): ordered
  kInterval,   // args[0], args[1] with left_open / right_open
  kUnion,      // union of args (sets or intervals)
  kMatrix,     // rows x cols, args row-major
};

// Relation operators, normalized: `\leq` and `<=` are both kLe.
enum class RelOp { kEq, kNe, kLt, kLe, kGt, kGe, kApprox, kIn };

struct Node;
using NodePtr = std::shared_ptr<const Node>;

struct Node {
  NodeKind kind = NodeKind::kNumber;
  cln::cl_RA value = 0;      // kNumber
  bool is_float = false;     // kNumber written with a decimal point
  bool percent = false;      // the node was written as "X%" (value already /100)
  std::string name;          // kSymbol, kConstant, kFunction
  std::vector<NodePtr> args;
  std::vector<RelOp> ops;    // kRelation
  bool left_open = false;    // kInterval
  bool right_open = false;   // kInterval
  int rows = 0, cols = 0;    // kMatrix
};

// Constructors.
NodePtr MakeNumber(const cln::cl_RA& value, bool is_float = false);
NodePtr MakeSymbol(std::string name);
NodePtr MakeConstant(std::string name);
NodePtr MakeNode(NodeKind kind, std::vector<NodePtr> args);
NodePtr MakeFunction(std::string name, std::vector<NodePtr> args);
NodePtr MakeRelation(std::vector<NodePtr> operands, std::vector<RelOp> ops);
NodePtr MakeInterval(NodePtr lo, NodePtr hi, bool left_open, bool right_open);
NodePtr MakeMatrix(int rows, int cols, std::vector<NodePtr> cells);
NodePtr Neg(NodePtr a);
NodePtr Sub(NodePtr a, NodePtr b);
NodePtr Div(NodePtr a, NodePtr b);

// A canonical, fully parenthesized rendering: two trees are structurally
// equal iff their strings are equal. Also used in result details.
std::string ToString(const Node& node);
std::string RelOpString(RelOp op);

bool IsSetLike(const Node& node);  // kSet, kList, kTuple, kInterval, kUnion
// True for a bare symbol, a product of symbols, or a subscripted symbol: the
// left side of an assignment such as `k = 1`.
bool IsOnlySymbols(const Node& node);
// True when the tree contains a decimal literal anywhere.
bool ContainsFloat(const Node& node);
// Collects the free symbol names in the tree (sorted, unique).
void CollectSymbols(const Node& node, std::vector<std::string>* out);
// Replaces symbols by name (for non-strict variable renaming).
NodePtr RenameSymbols(const NodePtr& node,
                      const std::vector<std::pair<std::string, std::string>>& map);

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_AST_H_
