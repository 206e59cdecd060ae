#include "services/verifier/backends/math/latex_parser.h"

#include <cln/integer.h>
#include <cln/rational.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cascade::verifier::math {
namespace {

const std::set<std::string>& FunctionNames() {
  static const auto* names = new std::set<std::string>{
      "sin",    "cos",    "tan",    "sec",     "csc",     "cot",    "arcsin", "arccos",
      "arctan", "sinh",   "cosh",   "tanh",    "log",     "ln",     "exp",    "lg",
      "arcsec", "arccsc", "arccot", "max",     "min",     "gcd",    "lcm",    "det",
      "deg",    "arg",    "sgn",    "Re",      "Im"};
  return *names;
}

const std::set<std::string>& GreekNames() {
  static const auto* names = new std::set<std::string>{
      "alpha", "beta",  "gamma",   "delta", "epsilon", "varepsilon", "zeta",  "eta",
      "theta", "vartheta", "iota", "kappa", "lambda",  "mu",         "nu",    "xi",
      "rho",   "sigma", "tau",     "upsilon", "phi",   "varphi",     "chi",   "psi",
      "omega", "Gamma", "Delta",   "Theta", "Lambda",  "Xi",         "Pi",    "Sigma",
      "Upsilon", "Phi", "Psi",     "Omega", "ell",     "hbar",       "aleph"};
  return *names;
}

// Commands whose single argument is a name or a styled expression.
const std::set<std::string>& TextCommands() {
  static const auto* names = new std::set<std::string>{
      "text", "textbf", "textit", "textnormal", "textrm", "textsf", "texttt", "mbox",
      "mathrm", "mathit", "mathbf", "mathsf", "mathtt", "mathcal", "mathscr", "boldsymbol",
      "bm", "operatorname", "rm", "hbox", "emph"};
  return *names;
}

// Decorations: \vec{v} is a name of its own.
const std::set<std::string>& DecorationCommands() {
  static const auto* names = new std::set<std::string>{
      "vec", "overline", "bar", "hat", "tilde", "widehat", "widetilde", "overrightarrow",
      "underline", "dot", "ddot", "overleftrightarrow", "mathring"};
  return *names;
}

class Parser {
 public:
  Parser(absl::string_view text, const ParseLimits& limits) : s_(text), limits_(limits) {}

  absl::StatusOr<NodePtr> ParseAll() {
    if (s_.size() > limits_.max_length) {
      return absl::InvalidArgumentError("answer too long to parse");
    }
    ASSIGN_OR_RETURN(NodePtr node, ParseList(/*closers=*/""));
    SkipSpace();
    if (pos_ != s_.size()) {
      return Error(absl::StrCat("unexpected '", s_.substr(pos_, 10), "'"));
    }
    return node;
  }

 private:
  // RAII depth guard: deeply nested input is an error, not a stack overflow.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* p) : p_(p) { ++p_->depth_; }
    ~DepthGuard() { --p_->depth_; }
    bool Exceeded() const { return p_->depth_ > p_->limits_.max_depth; }

   private:
    Parser* p_;
  };

  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("parse error at ", pos_, ": ", message));
  }

  void SkipSpace() {
    while (pos_ < s_.size()) {
      unsigned char c = s_[pos_];
      if (std::isspace(c)) {
        ++pos_;
      } else if (s_.substr(pos_, 2) == "\\\\" && matrix_depth_ == 0) {
        pos_ += 2;  // a line break outside a matrix carries no meaning
      } else {
        break;
      }
    }
  }

  bool AtEnd() {
    SkipSpace();
    return pos_ >= s_.size();
  }

  // Peeks a command name at pos_ ("\frac" -> "frac"); empty when none.
  std::string PeekCommand() const {
    if (pos_ >= s_.size() || s_[pos_] != '\\') return "";
    size_t i = pos_ + 1;
    if (i < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i]))) {
      while (i < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i]))) ++i;
      return std::string(s_.substr(pos_ + 1, i - pos_ - 1));
    }
    if (i < s_.size()) return std::string(1, s_[i]);
    return "";
  }

  bool ConsumeCommand(absl::string_view name) {
    SkipSpace();
    if (PeekCommand() == name) {
      pos_ += 1 + name.size();
      return true;
    }
    return false;
  }

  bool Consume(absl::string_view token) {
    SkipSpace();
    if (s_.substr(pos_, token.size()) == token) {
      pos_ += token.size();
      return true;
    }
    return false;
  }

  bool PeekIs(absl::string_view token) {
    SkipSpace();
    return s_.substr(pos_, token.size()) == token;
  }

  // True when the text at pos_ closes the current group.
  bool AtCloser(absl::string_view closers) {
    SkipSpace();
    if (pos_ >= s_.size()) return true;
    char c = s_[pos_];
    if (c == '}' || c == ')' || c == ']' || c == '&') return true;
    if (PeekIs("\\}") || PeekIs("\\rvert") || PeekIs("\\rfloor") || PeekIs("\\rceil") ||
        PeekIs("\\end")) {
      return true;
    }
    if (c == '|' && absl::StrContains(closers, '|')) return true;
    if (matrix_depth_ > 0 && PeekIs("\\\\")) return true;
    return false;
  }

  absl::StatusOr<NodePtr> ParseList(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    std::vector<NodePtr> items;
    while (true) {
      ASSIGN_OR_RETURN(NodePtr item, ParseRelation(closers));
      items.push_back(std::move(item));
      if (Consume(",") || Consume(";")) {
        if (AtCloser(closers)) break;  // trailing comma
        continue;
      }
      break;
    }
    if (items.size() == 1) return items[0];
    return MakeNode(NodeKind::kList, std::move(items));
  }

  bool ParseRelOp(RelOp* op) {
    SkipSpace();
    static const std::pair<const char*, RelOp> kOps[] = {
        {"<=", RelOp::kLe},        {">=", RelOp::kGe},        {"!=", RelOp::kNe},
        {"==", RelOp::kEq},        {"=", RelOp::kEq},         {"<", RelOp::kLt},
        {">", RelOp::kGt},         {"≤", RelOp::kLe},         {"≥", RelOp::kGe},
        {"≠", RelOp::kNe},         {"\\leqslant", RelOp::kLe}, {"\\geqslant", RelOp::kGe},
        {"\\leq", RelOp::kLe},     {"\\geq", RelOp::kGe},     {"\\le", RelOp::kLe},
        {"\\ge", RelOp::kGe},      {"\\lt", RelOp::kLt},      {"\\gt", RelOp::kGt},
        {"\\neq", RelOp::kNe},     {"\\ne", RelOp::kNe},      {"\\approx", RelOp::kApprox},
        {"\\simeq", RelOp::kApprox}, {"\\equiv", RelOp::kEq}, {"\\in", RelOp::kIn},
        {"≈", RelOp::kApprox},     {"∈", RelOp::kIn}};
    for (const auto& [text, value] : kOps) {
      absl::string_view t(text);
      if (s_.substr(pos_, t.size()) != t) continue;
      if (t[0] == '\\') {
        size_t end = pos_ + t.size();
        if (end < s_.size() && std::isalpha(static_cast<unsigned char>(s_[end]))) continue;
      }
      pos_ += t.size();
      *op = value;
      return true;
    }
    return false;
  }

  absl::StatusOr<NodePtr> ParseRelation(absl::string_view closers) {
    ASSIGN_OR_RETURN(NodePtr first, ParseSetExpr(closers));
    std::vector<NodePtr> operands = {first};
    std::vector<RelOp> ops;
    RelOp op;
    while (ParseRelOp(&op)) {
      ASSIGN_OR_RETURN(NodePtr next, ParseSetExpr(closers));
      ops.push_back(op);
      operands.push_back(std::move(next));
    }
    if (ops.empty()) return first;
    // `x = 1/3 \approx 0.33`: the approximation adds nothing to the exact
    // value before it. A lone `x \approx 11` reads as `x = 11`.
    bool seen_eq = false;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (ops[i] == RelOp::kApprox) {
        if (seen_eq) {
          ops.resize(i);
          operands.resize(i + 1);
          break;
        }
        ops[i] = RelOp::kEq;
      } else if (ops[i] == RelOp::kEq) {
        seen_eq = true;
      }
    }
    // `x \in S` names the set S.
    if (ops.size() == 1 && ops[0] == RelOp::kIn) return operands[1];
    return MakeRelation(std::move(operands), std::move(ops));
  }

  absl::StatusOr<NodePtr> ParseSetExpr(absl::string_view closers) {
    ASSIGN_OR_RETURN(NodePtr first, ParseAdditive(closers));
    std::vector<NodePtr> parts = {first};
    while (true) {
      if (ConsumeCommand("cup") || Consume("∪")) {
        ASSIGN_OR_RETURN(NodePtr next, ParseAdditive(closers));
        parts.push_back(std::move(next));
      } else if (ConsumeCommand("cap") || ConsumeCommand("setminus")) {
        ASSIGN_OR_RETURN(NodePtr next, ParseAdditive(closers));
        NodePtr lhs = parts.size() == 1 ? parts[0] : MakeNode(NodeKind::kUnion, parts);
        parts = {MakeFunction("setop", {lhs, next})};
      } else {
        break;
      }
    }
    if (parts.size() == 1) return parts[0];
    return MakeNode(NodeKind::kUnion, std::move(parts));
  }

  absl::StatusOr<NodePtr> ParseAdditive(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    std::vector<NodePtr> terms;
    NodePtr pm_base;
    // A leading ± is a term of its own: `\pm 2`.
    if (ConsumeCommand("pm") || Consume("±")) {
      ASSIGN_OR_RETURN(NodePtr t, ParseMul(closers));
      return MakeNode(NodeKind::kPlusMinus, {MakeNumber(0), t});
    }
    ASSIGN_OR_RETURN(NodePtr first, ParseMul(closers));
    terms.push_back(first);
    while (true) {
      SkipSpace();
      if (Consume("+")) {
        ASSIGN_OR_RETURN(NodePtr t, ParseMul(closers));
        terms.push_back(t);
      } else if (Consume("-") || Consume("−")) {
        ASSIGN_OR_RETURN(NodePtr t, ParseMul(closers));
        terms.push_back(Neg(t));
      } else if (ConsumeCommand("pm") || Consume("±") || ConsumeCommand("mp")) {
        ASSIGN_OR_RETURN(NodePtr t, ParseMul(closers));
        NodePtr lhs = terms.size() == 1 ? terms[0] : MakeNode(NodeKind::kAdd, terms);
        terms = {MakeNode(NodeKind::kPlusMinus, {lhs, t})};
      } else {
        break;
      }
    }
    if (terms.size() == 1) return terms[0];
    return MakeNode(NodeKind::kAdd, std::move(terms));
  }

  // True when an atom can start at pos_ (for implicit multiplication).
  bool CanStartAtom(absl::string_view closers) {
    if (AtCloser(closers)) return false;
    char c = s_[pos_];
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '(' || c == '[' || c == '{' ||
        c == '.') {
      return true;
    }
    if (c == '|') return !absl::StrContains(closers, '|');
    if (static_cast<unsigned char>(c) >= 0x80) {
      return PeekIs("π") || PeekIs("∞") || PeekIs("√");
    }
    if (c == '\\') {
      std::string cmd = PeekCommand();
      static const std::set<std::string> kNotAtoms = {
          "cdot", "times", "div", "pm", "mp", "cup", "cap", "setminus", "le", "leq", "ge",
          "geq", "lt", "gt", "ne", "neq", "approx", "in", "equiv", "leqslant", "geqslant",
          "simeq", "%", "right", "end", "}", ",", ";", "rvert", "rfloor", "rceil", "\\",
          "to", "quad"};
      return !cmd.empty() && kNotAtoms.count(cmd) == 0;
    }
    return false;
  }

  absl::StatusOr<NodePtr> ParseMul(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    ASSIGN_OR_RETURN(NodePtr first, ParseUnary(closers));
    std::vector<NodePtr> factors = {first};
    while (true) {
      SkipSpace();
      if (PeekIs("**")) break;  // handled as power in postfix
      if (Consume("*") || ConsumeCommand("cdot") || ConsumeCommand("times") || Consume("×") ||
          Consume("·") || ConsumeCommand("ast")) {
        ASSIGN_OR_RETURN(NodePtr f, ParseUnary(closers));
        factors.push_back(f);
      } else if (Consume("/") || ConsumeCommand("div") || Consume("÷")) {
        ASSIGN_OR_RETURN(NodePtr f, ParseUnary(closers));
        NodePtr lhs = factors.size() == 1 ? factors[0] : MakeNode(NodeKind::kMul, factors);
        factors = {Div(lhs, f)};
      } else if (CanStartAtom(closers)) {
        ASSIGN_OR_RETURN(NodePtr f, ParsePostfix(closers));
        factors.push_back(f);
      } else {
        break;
      }
    }
    if (factors.size() == 1) return factors[0];
    return MakeNode(NodeKind::kMul, std::move(factors));
  }

  absl::StatusOr<NodePtr> ParseUnary(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    SkipSpace();
    if (Consume("-") || Consume("−")) {
      ASSIGN_OR_RETURN(NodePtr inner, ParseUnary(closers));
      return Neg(inner);
    }
    if (Consume("+")) return ParseUnary(closers);
    return ParsePostfix(closers);
  }

  // The argument of ^, _, \frac, \sqrt: a braced group or one token.
  absl::StatusOr<NodePtr> ParseScriptArg() {
    SkipSpace();
    if (pos_ >= s_.size()) return Error("missing argument");
    char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      ASSIGN_OR_RETURN(NodePtr inner, ParseList("}"));
      if (!Consume("}")) return Error("expected '}'");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      ++pos_;
      return MakeNumber(c - '0');
    }
    if (std::isalpha(static_cast<unsigned char>(c))) {
      ++pos_;
      return LetterNode(c);
    }
    if (c == '-') {
      ++pos_;
      ASSIGN_OR_RETURN(NodePtr inner, ParseScriptArg());
      return Neg(inner);
    }
    return ParseAtom("");
  }

  NodePtr LetterNode(char c) {
    if (c == 'e') return MakeConstant("e");
    return MakeSymbol(std::string(1, c));
  }

  absl::StatusOr<NodePtr> ParsePostfix(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    ASSIGN_OR_RETURN(NodePtr base, ParseAtom(closers));
    while (true) {
      if (pos_ < s_.size() && s_[pos_] == '_' ) {
        // Subscripts name things: x_1, a_{n}, 204_5 (a base).
        ++pos_;
        size_t start = pos_;
        ASSIGN_OR_RETURN(NodePtr sub, ParseScriptArg());
        (void)start;
        if (base->kind == NodeKind::kSymbol || base->kind == NodeKind::kNumber ||
            base->kind == NodeKind::kConstant) {
          base = MakeSymbol(absl::StrCat(ToString(*base), "_", ToString(*sub)));
        } else {
          base = MakeFunction("sub", {base, sub});
        }
        continue;
      }
      SkipSpace();
      if (Consume("**")) {
        ASSIGN_OR_RETURN(NodePtr exponent, ParseUnary(closers));
        base = MakeNode(NodeKind::kPow, {base, exponent});
      } else if (Consume("^")) {
        ASSIGN_OR_RETURN(NodePtr exponent, ParseScriptArg());
        base = MakeNode(NodeKind::kPow, {base, exponent});
      } else if (PeekIs("!") && !PeekIs("!=")) {
        ++pos_;
        base = MakeFunction("factorial", {base});
      } else if (Consume("%") || ConsumeCommand("%")) {
        auto pct = std::make_shared<Node>(*MakeNode(
            NodeKind::kMul, {base, MakeNumber(cln::cl_RA(1) / 100)}));
        pct->percent = true;
        base = pct;
      } else if (PeekIs("'")) {
        ++pos_;
        base = MakeFunction("prime", {base});
      } else {
        break;
      }
    }
    return base;
  }

  absl::StatusOr<NodePtr> ParseNumber() {
    size_t start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    bool is_float = false;
    if (pos_ + 1 < s_.size() && s_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    } else if (pos_ < s_.size() && s_[pos_] == '.' && pos_ > start &&
               (pos_ + 1 >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
      // "3." is a float literal in plain expressions; leave the dot for
      // the caller when it ends a sentence.
    }
    std::string digits(s_.substr(start, pos_ - start));
    if (digits.empty() || digits == ".") return Error("bad number");
    return MakeNumber(ParseDecimal(digits), is_float);
  }

  static cln::cl_RA ParseDecimal(const std::string& digits) {
    size_t dot = digits.find('.');
    std::string int_part = dot == std::string::npos ? digits : digits.substr(0, dot);
    std::string frac_part = dot == std::string::npos ? "" : digits.substr(dot + 1);
    std::string all = int_part + frac_part;
    size_t nz = all.find_first_not_of('0');
    all = nz == std::string::npos ? "0" : all.substr(nz);
    cln::cl_I numerator(all.c_str());
    cln::cl_I denominator = (frac_part.empty() ? cln::cl_I(1) : cln::expt_pos(cln::cl_I(10), static_cast<long>(frac_part.size())));
    return numerator / denominator;
  }

  // Reads a braced group's raw text, for \text{} and \begin{...}.
  absl::StatusOr<std::string> ReadBracedRaw() {
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != '{') return Error("expected '{'");
    int depth = 0;
    size_t start = pos_ + 1;
    for (; pos_ < s_.size(); ++pos_) {
      if (s_[pos_] == '\\') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '{') ++depth;
      if (s_[pos_] == '}' && --depth == 0) {
        std::string raw(s_.substr(start, pos_ - start));
        ++pos_;
        return raw;
      }
    }
    return Error("unbalanced '{'");
  }

  absl::StatusOr<NodePtr> ParseSubText(const std::string& text) {
    Parser sub(text, limits_);
    sub.depth_ = depth_ + 1;
    return sub.ParseAll();
  }

  absl::StatusOr<NodePtr> ParseTextContent(const std::string& raw) {
    std::string content(absl::StripAsciiWhitespace(raw));
    bool word = !content.empty();
    for (char c : content) {
      if (!std::isalpha(static_cast<unsigned char>(c)) && c != ' ') word = false;
    }
    if (word) {
      content.erase(std::remove(content.begin(), content.end(), ' '), content.end());
      return MakeSymbol(content);
    }
    if (content.empty()) return Error("empty text");
    return ParseSubText(content);
  }

  absl::StatusOr<NodePtr> ParseMatrix(const std::string& env) {
    // Column spec of `array`: \begin{array}{cc}
    if (env == "array") {
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == '{') {
        ASSIGN_OR_RETURN(std::string spec, ReadBracedRaw());
        (void)spec;
      }
    }
    ++matrix_depth_;
    std::vector<std::vector<NodePtr>> rows(1);
    while (true) {
      SkipSpace();
      if (PeekIs("\\end")) break;
      if (pos_ >= s_.size()) return Error("unterminated matrix");
      if (PeekIs("&")) {
        return Error("empty matrix cell");
      }
      ASSIGN_OR_RETURN(NodePtr cell, ParseList(""));
      rows.back().push_back(cell);
      SkipSpace();
      if (Consume("&")) continue;
      if (Consume("\\\\")) {
        SkipSpace();
        if (PeekIs("\\end")) break;
        rows.emplace_back();
        continue;
      }
      if (PeekIs("\\end")) break;
      return Error("bad matrix cell");
    }
    --matrix_depth_;
    ConsumeCommand("end");
    ASSIGN_OR_RETURN(std::string end_env, ReadBracedRaw());
    if (end_env != env) return Error("mismatched \\end");
    if (!rows.empty() && rows.back().empty()) rows.pop_back();
    if (rows.empty()) return Error("empty matrix");
    size_t cols = rows[0].size();
    std::vector<NodePtr> cells;
    for (const auto& row : rows) {
      if (row.size() != cols) return Error("ragged matrix");
      cells.insert(cells.end(), row.begin(), row.end());
    }
    return MakeMatrix(static_cast<int>(rows.size()), static_cast<int>(cols), std::move(cells));
  }

  // Parses a bracketed group after its opener: `(a)`, `(a, b)`, `[a, b)`.
  absl::StatusOr<NodePtr> ParseBracketed(char open) {
    ASSIGN_OR_RETURN(NodePtr inner, ParseList(""));
    SkipSpace();
    char close = pos_ < s_.size() ? s_[pos_] : '\0';
    if (close != ')' && close != ']') return Error("unclosed bracket");
    ++pos_;
    if (inner->kind == NodeKind::kList) {
      if (inner->args.size() == 2 && !(open == '(' && close == ')')) {
        return MakeInterval(inner->args[0], inner->args[1], open == '(', close == ')');
      }
      return MakeNode(NodeKind::kTuple, inner->args);
    }
    if (open == '[' && close == ')') return Error("half-open bracket around one value");
    return inner;
  }

  absl::StatusOr<NodePtr> ParseFunction(const std::string& name) {
    NodePtr power;
    NodePtr base;
    while (true) {
      SkipSpace();
      if (Consume("^")) {
        ASSIGN_OR_RETURN(power, ParseScriptArg());
      } else if (pos_ < s_.size() && s_[pos_] == '_') {
        ++pos_;
        ASSIGN_OR_RETURN(base, ParseScriptArg());
      } else {
        break;
      }
    }
    SkipSpace();
    NodePtr arg;
    if (pos_ < s_.size() && s_[pos_] == '(') {
      ++pos_;
      ASSIGN_OR_RETURN(arg, ParseList(""));
      if (!Consume(")")) return Error("expected ')'");
    } else {
      ASSIGN_OR_RETURN(arg, ParsePostfix(""));
    }
    std::vector<NodePtr> args;
    if (arg->kind == NodeKind::kList || arg->kind == NodeKind::kTuple) {
      args = arg->args;
    } else {
      args = {arg};
    }
    NodePtr call;
    if (name == "log" && base) {
      call = MakeFunction("log", {args[0], base});
    } else if (name == "lg") {
      call = MakeFunction("log", {args[0], MakeNumber(10)});
    } else {
      call = MakeFunction(name == "ln" ? "log" : name, args);
    }
    // \sin^{-1} is the inverse function.
    if (power && power->kind == NodeKind::kNumber && power->value == -1 &&
        (name == "sin" || name == "cos" || name == "tan")) {
      return MakeFunction("arc" + name, args);
    }
    if (power) return MakeNode(NodeKind::kPow, {call, power});
    return call;
  }

  absl::StatusOr<NodePtr> ParseCommand(absl::string_view closers) {
    std::string cmd = PeekCommand();
    if (cmd.empty()) return Error("lone backslash");
    pos_ += 1 + cmd.size();
    if (cmd == "frac" || cmd == "over") {
      ASSIGN_OR_RETURN(NodePtr num, ParseScriptArg());
      ASSIGN_OR_RETURN(NodePtr den, ParseScriptArg());
      return Div(num, den);
    }
    if (cmd == "binom" || cmd == "choose") {
      ASSIGN_OR_RETURN(NodePtr n, ParseScriptArg());
      ASSIGN_OR_RETURN(NodePtr k, ParseScriptArg());
      return MakeFunction("binom", {n, k});
    }
    if (cmd == "sqrt") {
      NodePtr index;
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == '[') {
        ++pos_;
        ASSIGN_OR_RETURN(index, ParseList(""));
        if (!Consume("]")) return Error("expected ']'");
      }
      ASSIGN_OR_RETURN(NodePtr radicand, ParseScriptArg());
      if (index) {
        return MakeNode(NodeKind::kPow, {radicand, Div(MakeNumber(1), index)});
      }
      return MakeFunction("sqrt", {radicand});
    }
    if (cmd == "pi") return MakeConstant("pi");
    if (cmd == "infty" || cmd == "infinity") return MakeConstant("inf");
    if (cmd == "imath" || cmd == "jmath") return MakeConstant("i");
    if (cmd == "emptyset" || cmd == "varnothing") return MakeNode(NodeKind::kSet, {});
    if (cmd == "{") {
      SkipSpace();
      if (PeekIs("\\}")) {
        pos_ += 2;
        return MakeNode(NodeKind::kSet, {});
      }
      ASSIGN_OR_RETURN(NodePtr inner, ParseList("\\}"));
      if (!Consume("\\}")) return Error("expected '\\}'");
      if (inner->kind == NodeKind::kList) return MakeNode(NodeKind::kSet, inner->args);
      return MakeNode(NodeKind::kSet, {inner});
    }
    if (cmd == "lvert" || cmd == "|" || cmd == "vert") {
      ASSIGN_OR_RETURN(NodePtr inner, ParseAdditive(""));
      if (!ConsumeCommand("rvert") && !ConsumeCommand("|") && !ConsumeCommand("vert") &&
          !Consume("|")) {
        return Error("expected closing bar");
      }
      return MakeFunction("abs", {inner});
    }
    if (cmd == "lfloor" || cmd == "lceil") {
      ASSIGN_OR_RETURN(NodePtr inner, ParseAdditive(""));
      if (!ConsumeCommand(cmd == "lfloor" ? "rfloor" : "rceil")) return Error("unclosed floor");
      return MakeFunction(cmd == "lfloor" ? "floor" : "ceil", {inner});
    }
    if (cmd == "langle") {
      ASSIGN_OR_RETURN(NodePtr inner, ParseList(""));
      if (!ConsumeCommand("rangle")) return Error("expected \\rangle");
      if (inner->kind == NodeKind::kList) return MakeNode(NodeKind::kTuple, inner->args);
      return inner;
    }
    if (cmd == "mathbb") {
      ASSIGN_OR_RETURN(std::string raw, ReadBracedRaw());
      std::string name(absl::StripAsciiWhitespace(raw));
      if (name == "R") {
        return MakeInterval(Neg(MakeConstant("inf")), MakeConstant("inf"), true, true);
      }
      return MakeSymbol("mathbb" + name);
    }
    if (TextCommands().count(cmd)) {
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] != '{') {
        // \rm x: a style switch without braces.
        return ParsePostfix(closers);
      }
      ASSIGN_OR_RETURN(std::string raw, ReadBracedRaw());
      if (cmd == "operatorname") {
        std::string name(absl::StripAsciiWhitespace(raw));
        if (FunctionNames().count(name)) return ParseFunction(name);
        return ParseFunction(name);
      }
      return ParseTextContent(raw);
    }
    if (DecorationCommands().count(cmd)) {
      ASSIGN_OR_RETURN(std::string raw, ReadBracedRaw());
      std::string name(absl::StripAsciiWhitespace(raw));
      name.erase(std::remove(name.begin(), name.end(), ' '), name.end());
      return MakeSymbol(cmd + "{" + name + "}");
    }
    if (cmd == "begin") {
      ASSIGN_OR_RETURN(std::string env, ReadBracedRaw());
      static const std::set<std::string> kMatrixEnvs = {
          "pmatrix", "bmatrix", "matrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "array"};
      if (!kMatrixEnvs.count(env)) return Error("unsupported environment " + env);
      ASSIGN_OR_RETURN(NodePtr matrix, ParseMatrix(env));
      if (env == "vmatrix") return MakeFunction("det", {matrix});
      return matrix;
    }
    if (FunctionNames().count(cmd)) return ParseFunction(cmd);
    if (GreekNames().count(cmd)) return MakeSymbol(cmd);
    if (cmd == "ldots" || cmd == "cdots" || cmd == "dots" || cmd == "dotsc" || cmd == "dotsb") {
      return MakeSymbol("...");
    }
    if (cmd == "%") return Error("stray percent");
    return Error("unknown command \\" + cmd);
  }

  absl::StatusOr<NodePtr> ParseAtom(absl::string_view closers) {
    DepthGuard guard(this);
    if (guard.Exceeded()) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end");
    char c = s_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
      return ParseNumber();
    }
    if (std::isalpha(static_cast<unsigned char>(c))) {
      ++pos_;
      return LetterNode(c);
    }
    if (c == '(' || c == '[') {
      ++pos_;
      return ParseBracketed(c);
    }
    if (c == '{') {
      ++pos_;
      SkipSpace();
      if (Consume("}")) return Error("empty group");
      ASSIGN_OR_RETURN(NodePtr inner, ParseList("}"));
      if (!Consume("}")) return Error("expected '}'");
      return inner;
    }
    if (c == '|') {
      ++pos_;
      ASSIGN_OR_RETURN(NodePtr inner, ParseAdditive("|"));
      if (!Consume("|")) return Error("expected '|'");
      return MakeFunction("abs", {inner});
    }
    if (c == '\\') return ParseCommand(closers);
    if (Consume("π")) return MakeConstant("pi");
    if (Consume("∞")) return MakeConstant("inf");
    if (Consume("√")) {
      ASSIGN_OR_RETURN(NodePtr radicand, ParsePostfix(closers));
      return MakeFunction("sqrt", {radicand});
    }
    return Error(absl::StrCat("unexpected '", s_.substr(pos_, 1), "'"));
  }

  absl::string_view s_;
  const ParseLimits& limits_;
  size_t pos_ = 0;
  int depth_ = 0;
  int matrix_depth_ = 0;
};

// Returns every ± variant of `node` (1 when it has none).
std::vector<NodePtr> Variants(const NodePtr& node, int* budget) {
  if (node->kind == NodeKind::kPlusMinus && *budget > 0) {
    --*budget;
    std::vector<NodePtr> out;
    for (const NodePtr& a : Variants(node->args[0], budget)) {
      for (const NodePtr& b : Variants(node->args[1], budget)) {
        out.push_back(MakeNode(NodeKind::kAdd, {a, b}));
        out.push_back(MakeNode(NodeKind::kAdd, {a, Neg(b)}));
      }
    }
    return out;
  }
  if (node->args.empty() || IsSetLike(*node) || node->kind == NodeKind::kMatrix ||
      node->kind == NodeKind::kRelation) {
    return {node};
  }
  std::vector<std::vector<NodePtr>> partial = {{}};
  for (const NodePtr& arg : node->args) {
    std::vector<NodePtr> options = Variants(arg, budget);
    std::vector<std::vector<NodePtr>> next;
    for (const auto& prefix : partial) {
      for (const NodePtr& option : options) {
        next.push_back(prefix);
        next.back().push_back(option);
        if (next.size() > 16) break;
      }
    }
    partial = std::move(next);
  }
  std::vector<NodePtr> out;
  for (auto& args : partial) {
    auto copy = std::make_shared<Node>(*node);
    copy->args = std::move(args);
    out.push_back(copy);
  }
  return out;
}

bool HasPlusMinus(const Node& node) {
  if (node.kind == NodeKind::kPlusMinus) return true;
  for (const NodePtr& a : node.args) {
    if (HasPlusMinus(*a)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<NodePtr> ParseMath(absl::string_view text, const ParseLimits& limits) {
  Parser parser(text, limits);
  return parser.ParseAll();
}

NodePtr ExpandPlusMinus(const NodePtr& node) {
  if (!HasPlusMinus(*node)) return node;
  if (node->kind == NodeKind::kList || node->kind == NodeKind::kSet) {
    std::vector<NodePtr> items;
    for (const NodePtr& item : node->args) {
      NodePtr expanded = ExpandPlusMinus(item);
      if (expanded->kind == NodeKind::kList && item->kind != NodeKind::kList) {
        items.insert(items.end(), expanded->args.begin(), expanded->args.end());
      } else {
        items.push_back(expanded);
      }
    }
    return MakeNode(node->kind, std::move(items));
  }
  if (node->kind == NodeKind::kRelation) {
    auto copy = std::make_shared<Node>(*node);
    for (NodePtr& a : copy->args) a = ExpandPlusMinus(a);
    return copy;
  }
  if (IsSetLike(*node) || node->kind == NodeKind::kMatrix) {
    auto copy = std::make_shared<Node>(*node);
    for (NodePtr& a : copy->args) a = ExpandPlusMinus(a);
    return copy;
  }
  int budget = 4;
  std::vector<NodePtr> variants = Variants(node, &budget);
  if (variants.size() == 1) return variants[0];
  return MakeNode(NodeKind::kList, std::move(variants));
}

}  // namespace cascade::verifier::math
