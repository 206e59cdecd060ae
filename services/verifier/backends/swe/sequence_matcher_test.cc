#include "services/verifier/backends/swe/sequence_matcher.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "common/json_util.h"

namespace cascade::verifier {
namespace {

struct RatioCase {
  const char* a;
  const char* b;
  double expected;
};

// Values printed by
//   /usr/bin/python3 -c 'import difflib; print(repr(
//       difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()))'
// (Python 3.11.2). repr() round-trips, so equality is exact.
const RatioCase kDifflibRatios[] = {
    {"", "", 1.0},
    {"", "abc", 0.0},
    {"abc", "", 0.0},
    {"abc", "abc", 1.0},
    {"abcd", "bcde", 0.75},
    {"a", "b", 0.0},
    {"aaaa", "aa", 0.6666666666666666},
    {"abab", "baba", 0.75},
    {"abcabcabc", "cbacbacba", 0.4444444444444444},
    {"private Thread currentThread;", "private volatile Thread currentThread;", 0.8656716417910447},
    {"qabxcd", "abycdf", 0.6666666666666666},
    {"The quick brown fox", "The quick brown dog jumps", 0.7727272727272727},
    {"def add(a, b):\n    return a + b\n", "def add(a: int, b: int) -> int:\n    return a + b\n",
     0.7901234567901234},
    {"-Hello world\n+Hello World\n This is a file", "-Hello world\n+Hello World\n This was a file",
     0.963855421686747},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaab",
     0.5063291139240507},
    {"héllo wörld", "hello world", 0.8181818181818182},
    {"日本語のテキスト", "日本語テキストです", 0.8235294117647058},
    {"emoji 😀😃😄", "emoji 😄😃😀", 0.7777777777777778},
    {"ünïcödé", "unicode", 0.42857142857142855},
    {"\t\tindent", "    indent", 0.6666666666666666},
    {"x = 1\ny = 2\n", "y = 2\nx = 1\n", 0.5},
    {"abcdefghijklmnop", "ponmlkjihgfedcba", 0.0625},
    {"mississippi", "missouri", 0.5263157894736842},
    {"kitten", "sitting", 0.6153846153846154},
    {"flaw", "lawn", 0.75},
    {"GUMBO", "GAMBOL", 0.7272727272727273},
    {"1234567890", "0987654321", 0.1},
    {"ababababababababababababababababababababababababababababababababababababababababababababababa"
     "bababab",
     "babababababababababababababababababababababababababababababababababababababababababababababab"
     "abababa",
     0.99},
    {"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc"
     "abcabcabcabcabcabcabcabcabcx",
     "xabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcab"
     "cabcabcabcabcabcabcabcabcabc",
     0.9917355371900827},
    {"@@ -1,4 +1,4 @@\n-foo\n+bar\n context", "@@ -2,4 +2,4 @@\n-foo\n+baz\n context",
     0.9117647058823529},
    {"    if x is None:\n        return", "    if x is not None:\n        return x",
     0.9142857142857143},
    {"a b c d e f g", "a c e g", 0.7},
    {"same", "same", 1.0},
    {" ", "", 0.0},
    {"\n\n\n", "\n", 0.5},
    {"αβγδε", "αβxδε", 0.8},
    {"ÀÁÂÃ", "ÃÂÁÀ", 0.25},
    {"import os\nimport sys", "import sys\nimport os", 0.5},
    {"return self._cache[key]", "return self._cache.get(key)", 0.84},
    {"raise ValueError('bad')", "raise TypeError(\"bad\")", 0.7555555555555555},
    {"xyxyxyxyxyxy", "yxyxyxyxyxyx", 0.9166666666666666},
    {"aXbXcXdX", "XaXbXcXd", 0.875},
    {"abcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgab"
     "cdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcdefgabcd"
     "efgabcdefgabcdefgabcdefg",
     "abcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhab"
     "cdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcdefhabcd"
     "efhabcdefhabcdefhabcdefh",
     0.8571428571428571},
};

TEST_CASE("string similarity equals difflib's ratio on the reference table") {
  CancelToken cancel;
  for (const RatioCase& c : kDifflibRatios) {
    INFO("a=" << c.a << " b=" << c.b);
    absl::StatusOr<double> ratio = StringSimilarity(c.a, c.b, cancel);
    REQUIRE(ratio.ok());
    CHECK(*ratio == c.expected);
  }
}

TEST_CASE("matching blocks follow difflib's documented example") {
  // difflib docs: SequenceMatcher(None, "abxcd", "abcd").get_matching_blocks()
  // == [Match(a=0, b=0, size=2), Match(a=3, b=2, size=2), Match(a=5, b=4, size=0)]
  CancelToken cancel;
  auto matcher = SequenceMatcher::Create(DecodeUtf8("abxcd"), DecodeUtf8("abcd"),
                                         /*autojunk=*/false, cancel);
  REQUIRE(matcher.ok());
  std::vector<MatchingBlock> expected = {{0, 0, 2}, {3, 2, 2}, {5, 4, 0}};
  CHECK(matcher->matching_blocks() == expected);
}

TEST_CASE("opcodes follow difflib's documented example") {
  // difflib docs: a = "qabxcd", b = "abycdf" gives
  // delete a[0:1], equal a[1:3], replace a[3:4] b[2:3], equal a[4:6], insert b[5:6].
  CancelToken cancel;
  auto matcher = SequenceMatcher::Create(DecodeUtf8("qabxcd"), DecodeUtf8("abycdf"),
                                         /*autojunk=*/false, cancel);
  REQUIRE(matcher.ok());
  std::vector<Opcode> codes = matcher->GetOpcodes();
  REQUIRE(codes.size() == 5);
  CHECK(codes[0].tag == Opcode::Tag::kDelete);
  CHECK((codes[0].a_begin == 0 && codes[0].a_end == 1));
  CHECK(codes[1].tag == Opcode::Tag::kEqual);
  CHECK(codes[2].tag == Opcode::Tag::kReplace);
  CHECK((codes[2].a_begin == 3 && codes[2].b_begin == 2 && codes[2].b_end == 3));
  CHECK(codes[3].tag == Opcode::Tag::kEqual);
  CHECK(codes[4].tag == Opcode::Tag::kInsert);
  CHECK((codes[4].b_begin == 5 && codes[4].b_end == 6));
}

TEST_CASE("utf-8 is decoded to code points and bad bytes are escaped") {
  CHECK(DecodeUtf8("aé日😀") == std::vector<int32_t>{'a', 0xE9, 0x65E5, 0x1F600});
  CHECK(DecodeUtf8("\xff"
                   "a") == std::vector<int32_t>{0xDCFF, 'a'});
  CHECK(DecodeUtf8("\xc0\xaf") == std::vector<int32_t>{0xDCC0, 0xDCAF});  // overlong
}

TEST_CASE("splitlines splits where python's str.splitlines does") {
  CHECK(PySplitLines("") == std::vector<std::string>{});
  CHECK(PySplitLines("a\nb\n") == std::vector<std::string>{"a", "b"});
  CHECK(PySplitLines("a\r\nb\rc") == std::vector<std::string>{"a", "b", "c"});
  CHECK(PySplitLines("\n\n") == std::vector<std::string>{"", ""});
  CHECK(PySplitLines("x\x0cy\xe2\x80\xa8z") == std::vector<std::string>{"x", "y", "z"});
  CHECK(PySplitLines("tab\tstays") == std::vector<std::string>{"tab\tstays"});
}

TEST_CASE("unified diff body matches difflib.unified_diff for a small edit") {
  // "\n".join(list(difflib.unified_diff(old.splitlines(), new.splitlines(),
  //     fromfile="old", tofile="new", lineterm="", n=3))[2:])
  const std::string old_text = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
  const std::string new_text = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
  CancelToken cancel;
  auto body = UnifiedDiffBody(old_text, new_text, /*context=*/3, cancel);
  REQUIRE(body.ok());
  CHECK(*body == "@@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k");
  auto same = UnifiedDiffBody(old_text, old_text + "", 3, cancel);
  REQUIRE(same.ok());
  CHECK(same->empty());
}

TEST_CASE("a cancelled token stops a long comparison") {
  CancelToken cancel;
  cancel.Cancel();
  std::string a(5000, 'a'), b(5000, 'a');
  absl::StatusOr<double> ratio = StringSimilarity(a, b, cancel);
  CHECK(absl::IsDeadlineExceeded(ratio.status()));
}

// ---------------------------------------------------------------------------
// Live agreement with /usr/bin/python3's difflib on random inputs.

constexpr const char* kPython = "/usr/bin/python3";

// Runs `script` with /usr/bin/python3, giving it the path of a file holding
// `input` as argv[1]; returns its stdout, or an empty string on failure.
std::string RunPython(const std::string& script, const std::string& input) {
  char script_path[] = "/tmp/swe_difflib_scriptXXXXXX";
  char input_path[] = "/tmp/swe_difflib_inputXXXXXX";
  int script_fd = mkstemp(script_path);
  int input_fd = mkstemp(input_path);
  if (script_fd < 0 || input_fd < 0) return "";
  close(script_fd);
  close(input_fd);
  std::ofstream(script_path) << script;
  std::ofstream(input_path, std::ios::binary) << input;
  std::string command = std::string(kPython) + " " + script_path + " " + input_path;
  std::string output;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
    pclose(pipe);
  }
  unlink(script_path);
  unlink(input_path);
  return output;
}

bool HavePython() {
  if (access(kPython, X_OK) == 0) return true;
  WARN("/usr/bin/python3 is missing: skipping the live difflib comparison");
  return false;
}

std::string RandomText(std::mt19937& rng, size_t max_len) {
  // A small alphabet makes long repeats and ties, where tie-breaking matters.
  static const char* kPieces[] = {"a", "b", "c", " ", "\n", "é", "日", "😀", "ab", "(x)"};
  std::uniform_int_distribution<size_t> len_dist(0, max_len);
  std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
  std::string text;
  for (size_t n = len_dist(rng); n > 0; --n) text += kPieces[piece(rng)];
  return text;
}

std::string Mutate(std::mt19937& rng, const std::string& text) {
  std::string other = text;
  std::uniform_int_distribution<int> edits(0, 6);
  for (int k = edits(rng); k > 0 && !other.empty(); --k) {
    std::uniform_int_distribution<size_t> pos(0, other.size() - 1);
    size_t p = pos(rng);
    while (p > 0 && (static_cast<unsigned char>(other[p]) & 0xC0) == 0x80) --p;
    other.insert(p, RandomText(rng, 3));
  }
  return other;
}

TEST_CASE("string similarity equals live difflib on random strings") {
  if (!HavePython()) return;
  std::mt19937 rng(20240611);
  Json pairs = Json::array();
  for (int i = 0; i < 300; ++i) {
    std::string a = RandomText(rng, i < 280 ? 60 : 1500);
    std::string b = (i % 2 == 0) ? Mutate(rng, a) : RandomText(rng, i < 280 ? 60 : 1500);
    pairs.push_back({a, b});
  }
  const std::string script =
      "import difflib, json, sys\n"
      "pairs = json.load(open(sys.argv[1], encoding='utf-8'))\n"
      "print(json.dumps([difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()"
      " for a, b in pairs]))\n";
  auto expected = ParseJson(RunPython(script, pairs.dump()), "python output");
  REQUIRE(expected.ok());
  REQUIRE(expected->size() == pairs.size());
  CancelToken cancel;
  size_t agree = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const std::string a = pairs[i][0], b = pairs[i][1];
    absl::StatusOr<double> ratio = StringSimilarity(a, b, cancel);
    REQUIRE(ratio.ok());
    INFO("pair " << i << ": a=" << a << " b=" << b);
    CHECK(*ratio == (*expected)[i].get<double>());
    if (*ratio == (*expected)[i].get<double>()) ++agree;
  }
  CHECK(agree == pairs.size());
}

std::string RandomLines(std::mt19937& rng, size_t max_lines) {
  static const char* kLines[] = {"",       "    return x", "import os", "x = 1", "}",
                                 "  pass", "def f(a):",    "# comment", "y = 2", "\tindented"};
  std::uniform_int_distribution<size_t> count(0, max_lines);
  std::uniform_int_distribution<size_t> pick(0, std::size(kLines) - 1);
  std::uniform_int_distribution<int> fresh(0, 9);
  std::string text;
  for (size_t n = count(rng); n > 0; --n) {
    // Some unique lines so that hunks have anchors.
    text += fresh(rng) == 0 ? "line " + std::to_string(rng() % 1000) : kLines[pick(rng)];
    text += '\n';
  }
  return text;
}

TEST_CASE("unified diff body equals live difflib.unified_diff, autojunk included") {
  if (!HavePython()) return;
  std::mt19937 rng(7);
  Json pairs = Json::array();
  for (int i = 0; i < 120; ++i) {
    // Above 200 lines difflib's autojunk heuristic drops popular lines.
    std::string a = RandomLines(rng, i < 100 ? 40 : 400);
    std::string b = a;
    std::vector<std::string> lines = PySplitLines(b);
    std::uniform_int_distribution<int> edits(0, 5);
    for (int k = edits(rng); k > 0; --k) {
      size_t pos = lines.empty() ? 0 : rng() % lines.size();
      if (rng() % 2 == 0 && !lines.empty()) {
        lines.erase(lines.begin() + pos);
      } else {
        lines.insert(lines.begin() + pos, "edit " + std::to_string(k));
      }
    }
    b.clear();
    for (const std::string& line : lines) b += line + "\n";
    pairs.push_back({a, b});
  }
  const std::string script =
      "import difflib, json, sys\n"
      "pairs = json.load(open(sys.argv[1], encoding='utf-8'))\n"
      "print(json.dumps(['\\n'.join(list(difflib.unified_diff(a.splitlines(),"
      " b.splitlines(), fromfile='old', tofile='new', lineterm='', n=3))[2:])"
      " for a, b in pairs]))\n";
  auto expected = ParseJson(RunPython(script, pairs.dump()), "python output");
  REQUIRE(expected.ok());
  REQUIRE(expected->size() == pairs.size());
  CancelToken cancel;
  for (size_t i = 0; i < pairs.size(); ++i) {
    auto body =
        UnifiedDiffBody(pairs[i][0].get<std::string>(), pairs[i][1].get<std::string>(), 3, cancel);
    REQUIRE(body.ok());
    INFO("pair " << i);
    CHECK(*body == (*expected)[i].get<std::string>());
  }
}

}  // namespace
}  // namespace cascade::verifier
