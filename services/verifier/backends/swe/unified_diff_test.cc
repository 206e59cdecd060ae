#include "services/verifier/backends/swe/unified_diff.h"

#include <string>

#include "absl/strings/match.h"
#include "catch2/catch.hpp"

namespace cascade::verifier {
namespace {

// The code context the patches below apply to.
const char kCalc[] = R"(import math


def add(a, b):
    return a + b


def subtract(a, b):
    return a - b


def divide(a, b):
    return a / b


def sqrt(x):
    return math.sqrt(x)
)";

FileContents Context() {
  return {{"calc.py", kCalc},
          {"notes.txt", "line one\nline two\nlast line"},
          {"old_name.py", "def helper():\n    return 42\n"},
          {"gone.py", "print(\"bye\")\n"}};
}

// Written by `git diff --cached -M` after editing, renaming, deleting and
// adding files in a scratch repository holding Context().
const char kGitDiff[] = R"(diff --git a/calc.py b/calc.py
index ac7cc82..b4bf852 100644
--- a/calc.py
+++ b/calc.py
@@ -1,7 +1,7 @@
 import math
 
 
-def add(a, b):
+def add(a: float, b: float) -> float:
     return a + b
 
 
@@ -10,6 +10,8 @@ def subtract(a, b):
 
 
 def divide(a, b):
+    if b == 0:
+        raise ZeroDivisionError("division by zero")
     return a / b
 
 
diff --git a/gone.py b/gone.py
deleted file mode 100644
index 96e555d..0000000
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-print("bye")
diff --git a/old_name.py b/new_name.py
similarity index 50%
rename from old_name.py
rename to new_name.py
index c961442..cc45a2e 100644
--- a/old_name.py
+++ b/new_name.py
@@ -1,2 +1,2 @@
 def helper():
-    return 42
+    return 43
diff --git a/notes.txt b/notes.txt
index f996238..12ecc72 100644
--- a/notes.txt
+++ b/notes.txt
@@ -1,3 +1,3 @@
 line one
-line two
-last line
\ No newline at end of file
+line 2
+last line
diff --git a/version.py b/version.py
new file mode 100644
index 0000000..9f68fef
--- /dev/null
+++ b/version.py
@@ -0,0 +1 @@
+VERSION = "1.0"
)";

TEST_CASE("a git diff with edits, a deletion, a rename and a new file parses") {
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(kGitDiff);
  REQUIRE(patch.ok());
  REQUIRE(patch->files.size() == 5);
  const FilePatch& calc = patch->files[0];
  CHECK(calc.old_path == "calc.py");
  CHECK(calc.new_path == "calc.py");
  REQUIRE(calc.hunks.size() == 2);
  CHECK(calc.hunks[1].old_start == 10);
  CHECK(calc.hunks[1].new_count == 8);
  CHECK(calc.hunks[1].section == "def subtract(a, b):");
  const FilePatch& gone = patch->files[1];
  CHECK(gone.is_deleted_file);
  CHECK(gone.path() == "gone.py");
  const FilePatch& renamed = patch->files[2];
  CHECK(renamed.is_rename);
  CHECK(renamed.old_path == "old_name.py");
  CHECK(renamed.new_path == "new_name.py");
  CHECK(renamed.similarity_index == 50);
  const FilePatch& notes = patch->files[3];
  REQUIRE(notes.hunks.size() == 1);
  CHECK(notes.hunks[0].lines[2].no_newline);  // "-last line" had no newline
  CHECK_FALSE(notes.hunks[0].lines.back().no_newline);
  const FilePatch& version = patch->files[4];
  CHECK(version.is_new_file);
  CHECK(version.path() == "version.py");
  for (const FilePatch& file : patch->files) CHECK(file.HasEffect());
}

TEST_CASE("applying the git diff gives the files git produced") {
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(kGitDiff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(changes->size() == 6);
  CHECK(changes->at("gone.py") == std::nullopt);
  CHECK(changes->at("old_name.py") == std::nullopt);
  CHECK(changes->at("new_name.py") == "def helper():\n    return 43\n");
  CHECK(changes->at("notes.txt") == "line one\nline 2\nlast line\n");
  CHECK(changes->at("version.py") == "VERSION = \"1.0\"\n");
  const std::string calc = *changes->at("calc.py");
  CHECK(absl::StrContains(calc, "def add(a: float, b: float) -> float:\n    return a + b\n"));
  CHECK(absl::StrContains(
      calc,
      "def divide(a, b):\n    if b == 0:\n        raise ZeroDivisionError(\"division by "
      "zero\")\n    return a / b\n"));
  CHECK(absl::EndsWith(calc, "    return math.sqrt(x)\n"));
}

TEST_CASE("bare ---/+++ headers without a/ b/ prefixes and with timestamps parse") {
  const char diff[] =
      "--- calc.py\t2024-01-01 10:00:00.000000000 +0000\n"
      "+++ calc.py\t2024-01-02 10:00:00.000000000 +0000\n"
      "@@ -17,2 +17,2 @@\n"
      " def sqrt(x):\n"
      "-    return math.sqrt(x)\n"
      "+    return math.sqrt(abs(x))\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  REQUIRE(patch->files.size() == 1);
  CHECK(patch->files[0].path() == "calc.py");
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::EndsWith(*changes->at("calc.py"), "return math.sqrt(abs(x))\n"));
}

TEST_CASE("a hunk with wrong line numbers is placed where its context matches") {
  const char diff[] =
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -3,3 +3,3 @@\n"
      " def divide(a, b):\n"
      "-    return a / b\n"
      "+    return a // b\n"
      " \n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::StrContains(*changes->at("calc.py"), "    return a // b\n\n\ndef sqrt"));
}

TEST_CASE("a hunk whose body is shorter than its header is a parse error with a line") {
  const char diff[] =
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -4,3 +4,3 @@\n"
      "-def add(a, b):\n"
      "+def add(x, y):\n"
      "     return a + b\n"
      "diff --git a/x b/x\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE_FALSE(patch.ok());
  CHECK(absl::IsInvalidArgument(patch.status()));
  CHECK(absl::StrContains(patch.status().message(), "line 7:"));
  CHECK(absl::StrContains(patch.status().message(), "declares 3 old and 3 new lines"));
}

TEST_CASE("a hunk whose body is longer than its header is a parse error") {
  const char diff[] =
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -4,1 +4,1 @@\n"
      "-def add(a, b):\n"
      "+def add(x, y):\n"
      "-    return a + b\n"
      "+    return x + y\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE_FALSE(patch.ok());
  CHECK(absl::StrContains(patch.status().message(), "line 6:"));
  CHECK(absl::StrContains(patch.status().message(), "mismatch"));
}

TEST_CASE("a patch that ends inside a hunk is a parse error") {
  const char diff[] = "--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n import math\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE_FALSE(patch.ok());
  CHECK(absl::StrContains(patch.status().message(), "patch ends inside a hunk"));
}

TEST_CASE("malformed hunk headers and headerless hunks are rejected") {
  CHECK_FALSE(ParseUnifiedDiff("--- a/x\n+++ b/x\n@@ -a,b +1 @@\n+x\n").ok());
  CHECK_FALSE(ParseUnifiedDiff("@@ -1 +1 @@\n-a\n+b\n").ok());
  CHECK_FALSE(ParseUnifiedDiff("just some prose\nwith no diff\n").ok());
  // A new file whose hunk claims old lines.
  CHECK_FALSE(ParseUnifiedDiff("--- /dev/null\n+++ b/n.py\n@@ -1,1 +1,1 @@\n-a\n+b\n").ok());
}

TEST_CASE("omitted hunk counts default to one line") {
  absl::StatusOr<Patch> patch =
      ParseUnifiedDiff("--- a/notes.txt\n+++ b/notes.txt\n@@ -2 +2 @@\n-line two\n+line 2\n");
  REQUIRE(patch.ok());
  CHECK(patch->files[0].hunks[0].old_count == 1);
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  // The last line keeps its missing newline: the hunk does not reach it.
  CHECK(changes->at("notes.txt") == "line one\nline 2\nlast line");
}

TEST_CASE("a no-newline marker on the new side drops the final newline") {
  const char diff[] =
      "--- a/old_name.py\n+++ b/old_name.py\n"
      "@@ -1,2 +1,2 @@\n"
      " def helper():\n"
      "-    return 42\n"
      "+    return 0\n"
      "\\ No newline at end of file\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(changes->at("old_name.py") == "def helper():\n    return 0");
}

TEST_CASE("context that matches nowhere gives an error naming file, hunk and line") {
  const char diff[] =
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -4,2 +4,2 @@\n"
      "-def add(a, b, c):\n"
      "+def add(a, b, c=0):\n"
      "     return a + b\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE_FALSE(changes.ok());
  const std::string message(changes.status().message());
  CHECK(absl::StrContains(message, "calc.py: hunk #1 (patch line 3)"));
  CHECK(absl::StrContains(message, "line 4 of the file is \"def add(a, b):\""));
}

TEST_CASE("patches for files outside the context or creating existing files fail") {
  CancelToken cancel;
  absl::StatusOr<Patch> missing =
      ParseUnifiedDiff("--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-a\n+b\n");
  REQUIRE(missing.ok());
  absl::StatusOr<FileChanges> applied = ApplyPatch(*missing, Context(), cancel);
  REQUIRE_FALSE(applied.ok());
  CHECK(absl::StrContains(applied.status().message(), "nope.py: no such file"));

  absl::StatusOr<Patch> create =
      ParseUnifiedDiff("--- /dev/null\n+++ b/calc.py\n@@ -0,0 +1 @@\n+x = 1\n");
  REQUIRE(create.ok());
  CHECK_FALSE(ApplyPatch(*create, Context(), cancel).ok());
}

TEST_CASE("a pure rename without hunks moves the content") {
  const char diff[] =
      "diff --git a/old_name.py b/pkg/helper.py\n"
      "similarity index 100%\n"
      "rename from old_name.py\n"
      "rename to pkg/helper.py\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  REQUIRE(patch->files.size() == 1);
  CHECK(patch->files[0].is_rename);
  CHECK(patch->files[0].similarity_index == 100);
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(changes->at("old_name.py") == std::nullopt);
  CHECK(changes->at("pkg/helper.py") == "def helper():\n    return 42\n");
}

TEST_CASE("a hunk that removes and re-adds the same lines has no effect") {
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(
      "--- a/calc.py\n+++ b/calc.py\n@@ -4,2 +4,2 @@\n-def add(a, b):\n+def add(a, b):\n"
      "     return a + b\n");
  REQUIRE(patch.ok());
  CHECK_FALSE(patch->files[0].HasEffect());
}

TEST_CASE("prose before the diff and blank context lines are tolerated") {
  const char diff[] =
      "Fix the division.\n\n"
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -12,4 +12,4 @@\n"
      " def divide(a, b):\n"
      "-    return a / b\n"
      "+    return a / float(b)\n"
      "\n"  // the lone space of an empty context line was stripped
      "\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::StrContains(*changes->at("calc.py"), "return a / float(b)\n"));
}

TEST_CASE("git format-patch output with a diffstat and a signature parses") {
  const char mail[] =
      "From 3f2a9c1d Mon Sep 17 00:00:00 2001\n"
      "From: Dev <dev@example.com>\n"
      "Subject: [PATCH] Guard sqrt against negative input\n"
      "\n"
      "---\n"
      " calc.py | 2 +-\n"
      " 1 file changed, 1 insertion(+), 1 deletion(-)\n"
      "\n"
      "diff --git a/calc.py b/calc.py\n"
      "index ac7cc82..0d1e2f3 100644\n"
      "--- a/calc.py\n"
      "+++ b/calc.py\n"
      "@@ -16,2 +16,2 @@ def divide(a, b):\n"
      " def sqrt(x):\n"
      "-    return math.sqrt(x)\n"
      "+    return math.sqrt(max(x, 0))\n"
      "-- \n"
      "2.39.2\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(mail);
  REQUIRE(patch.ok());
  REQUIRE(patch->files.size() == 1);
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::EndsWith(*changes->at("calc.py"), "    return math.sqrt(max(x, 0))\n"));
}

TEST_CASE("a second hunk is searched for only after the first one") {
  // Both hunks change a "return a" line; the second must not land on the
  // first one's place even though its header points there.
  const char diff[] =
      "--- a/calc.py\n+++ b/calc.py\n"
      "@@ -5,1 +5,1 @@\n"
      "-    return a + b\n"
      "+    return b + a\n"
      "@@ -5,1 +5,1 @@\n"
      "-    return a - b\n"
      "+    return -(b - a)\n";
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(diff);
  REQUIRE(patch.ok());
  CancelToken cancel;
  absl::StatusOr<FileChanges> changes = ApplyPatch(*patch, Context(), cancel);
  REQUIRE(changes.ok());
  CHECK(absl::StrContains(*changes->at("calc.py"),
                          "def add(a, b):\n    return b + a\n\n\ndef subtract(a, b):\n"
                          "    return -(b - a)\n"));
  // Hunks out of order cannot apply: the first one consumed the file up to line 9.
  absl::StatusOr<Patch> reversed = ParseUnifiedDiff(
      "--- a/calc.py\n+++ b/calc.py\n@@ -9 +9 @@\n-    return a - b\n+    return 0\n"
      "@@ -5 +5 @@\n-    return a + b\n+    return 0\n");
  REQUIRE(reversed.ok());
  CHECK_FALSE(ApplyPatch(*reversed, Context(), cancel).ok());
}

TEST_CASE("file-level diffs render hunks and renames as SWE-RL compares them") {
  absl::StatusOr<Patch> patch = ParseUnifiedDiff(kGitDiff);
  REQUIRE(patch.ok());
  std::map<std::string, std::string> diffs = FileLevelDiffs(*patch);
  REQUIRE(diffs.size() == 5);
  CHECK(diffs.at("old_name.py") ==
        "rename from old_name.py to new_name.py\n"
        "@@ -1,2 +1,2 @@\n def helper():\n-    return 42\n+    return 43");
  CHECK(diffs.at("version.py") == "@@ -0,0 +1,1 @@\n+VERSION = \"1.0\"");
  CHECK(diffs.at("notes.txt") ==
        "@@ -1,3 +1,3 @@\n line one\n-line two\n-last line\n"
        "\\ No newline at end of file\n+line 2\n+last line");
  CHECK(absl::StartsWith(diffs.at("calc.py"), "@@ -1,7 +1,7 @@\n import math\n"));
  CHECK(absl::StrContains(diffs.at("calc.py"), "\n@@ -10,6 +10,8 @@ def subtract(a, b):\n"));
}

}  // namespace
}  // namespace cascade::verifier
