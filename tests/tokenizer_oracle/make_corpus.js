#!/usr/bin/env node
// Writes corpus.jsonl: the strings the C++ tokenizer is checked on against
// the JavaScript oracle (oracle.js). Deterministic (seeded), so the
// committed file is reproducible: node make_corpus.js > corpus.jsonl
"use strict";

// mulberry32: a small seeded PRNG, so the corpus never changes by accident.
let seed = 20240611;
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const count = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

const prose = [
  "The quick brown fox jumps over the lazy dog.",
  "It was the best of times, it was the worst of times.",
  "Reinforcement learning from verifiable rewards trains the policy on problems whose answers can be checked.",
  "She said, \"I'll be there by 5 o'clock—don't wait.\"",
  "We're sure they've done it; you'd think he'll agree, but I'm not.",
  "WE'RE SHOUTING AND THEY'VE HEARD IT'S LOUD.",
  "Mr. Smith paid $1,234.56 (incl. 20% VAT) on 2024-03-15 at 09:30.",
  "e.g. i.e. etc. -- and... what?!",
  "Hello,world!How are you?I'm fine.",
  "  leading spaces and trailing spaces   ",
  "",
  " ",
  "a",
  "Supercalifragilisticexpialidocious antidisestablishmentarianism",
];
const code = [
  "def fib(n):\n\tif n < 2:\n\t\treturn n\n\treturn fib(n - 1) + fib(n - 2)\n",
  "#include <vector>\nint main() {\n    std::vector<int> v{1, 2, 3};\n    return v.size() > 2 ? 0 : 1;\n}\n",
  "for (let i = 0; i < 10; ++i) { console.log(`i=${i}`); }",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "    if x:\n        y = [a**2 for a in range(10) if a % 3 == 0]\n",
  "fn main() -> Result<(), Box<dyn Error>> { let s: &str = \"hi\"; Ok(()) }",
  "$ ls -la | grep '^d' && echo \"done\" > /dev/null 2>&1",
  "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}",
  "x+=1;y-=2;z*=3;w/=4;a%=5;b<<=6;c>>=7;d&=8;e|=9;f^=10;",
  "\t\t\tindented with tabs\n\n\n\nand blank lines\r\n\r\nwindows",
  "<div class=\"a\"><span>text</span></div>",
  "0x1F 0b1010 1e-9 3.14159 -42 1_000_000 007",
];
const unicode = [
  "日本語のテキストです。東京は大きい都市です。",
  "中文文本：我爱自然语言处理，机器学习很有趣。",
  "한국어 텍스트입니다. 안녕하세요!",
  "العربية: مرحبا بالعالم، كيف حالك؟",
  "עברית: שלום עולם",
  "Русский текст: съешь же ещё этих мягких французских булок.",
  "Ελληνικά: Γειά σου Κόσμε",
  "हिन्दी: नमस्ते दुनिया",
  "ไทย: สวัสดีชาวโลก",
  "Emoji: 😀😃😄 👍🏽 ❤️ 🇫🇷 🇯🇵",
  "ZWJ families: 👨‍👩‍👧‍👦 👩‍💻 🏳️‍🌈 🧑🏿‍🚀",
  "Combining: e\u0301 a\u0300 o\u0308 n\u0303 (decomposed) vs é à ö ñ (composed)",
  "Stacked marks: a\u0301\u0302\u0303 Z\u0351\u0352\u0353\u0354 q\u0323\u0307",
  "Hangul jamo: \u1100\u1161\u11a8 vs 각",
  "Angstrom \u212b and Ohm \u2126 and Kelvin \u212a",
  "Full-width: ＡＢＣ１２３！？",
  "Math letters: 𝐀𝐁𝐂 𝒳𝒴𝒵 ℝℕℤ",
  "Mixed: café naïve résumé coöperate façade",
  "Non-breaking\u00a0space and\u2003em space and\u3000ideographic space",
  "Zero width:\u200bspace\u200cnon-joiner\u200djoiner\u2060word joiner",
  "Line\u2028separator and paragraph\u2029separator",
  "Tamil: தமிழ் Devanagari conjunct: क्ष त्र ज्ञ",
  "Cuneiform 𒀀 and Linear B 𐀀 and Gothic 𐌰",
];
const latex = [
  "$\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\int_0^\\infty e^{-t}\\,dt$",
  "\\begin{align} f(x) &= \\sum_{n=0}^{N} \\binom{N}{n} x^n \\\\ g(x) &= \\lim_{h \\to 0} \\frac{f(x+h)-f(x)}{h} \\end{align}",
  "The answer is \\boxed{\\dfrac{3\\pi}{4}}.",
  "\\mathbb{R}^{n \\times m}, \\{x \\in \\mathbb{Z} : |x| < 5\\}",
];
const specials = [
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  "text<|endoftext|>more text<|endoftext|>",
  "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
  "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
  "<tool_response>\n42\n</tool_response>",
  "broken <|im_start and <|im_end| and <|endoftext| and < |im_end|>",
  "<|im_start|><|im_start|><|im_end|><|im_end|>",
  "  <|im_end|>  spaced  <|endoftext|>  ",
  "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
  "/think What is 2+2? /no_think",
];
const whitespace = [
  "a  b   c    d     e",
  "\n\n\n",
  "\t",
  "   \n   \n",
  "word \n word",
  "trailing\n ",
  " \t \t mixed \r\n",
  "x" + " ".repeat(40) + "y",
  "\n".repeat(12) + "end",
  "\u00a0\u00a0nbsp\u00a0",
  "\ufeffBOM at start and\ufeffinside",
  "NEL\u0085here and mongolian\u180evowel separator",
];
const digits = [
  "1234567890",
  "3.14159265358979323846264338327950288419716939937510",
  "Call 555-0100 or +1 (800) 555-0199 ext. 42",
  "١٢٣٤٥ Arabic-Indic digits and ۱۲۳ Persian and १२३ Devanagari",
  "Roman Ⅻ and fractions ½ ¾ and superscripts x² y³",
  "2024年3月15日 12:34:56",
];
const contractions = [
  "don't won't can't shouldn't y'all o'clock rock'n'roll",
  "IT'S THEY'LL WE'D I'M YOU'VE SHE'S",
  "It'S tHeY'lL We'D",
  "'s 't 're 've 'm 'll 'd",
  "''''' '' '",
  "’s curly apostrophe ’re",
  "ſ'ſ long s and Kelvin K's",
];

const all = [...prose, ...code, ...unicode, ...latex, ...specials, ...whitespace, ...digits, ...contractions];
const pools = [prose, code, unicode, latex, specials, whitespace, digits, contractions];
const seps = ["", " ", "\n", "\t", "  ", "\n\n", " \n", "\r\n"];

// Mixtures: fragments of different kinds glued with varied separators.
const corpus = [...all];
while (corpus.length < 360) {
  const parts = [];
  for (let k = count(2, 5); k > 0; --k) {
    parts.push(pick(pick(pools)));
    parts.push(pick(seps));
  }
  corpus.push(parts.join(""));
}
// Character soup: random code points from interesting ranges, to probe the
// split regex's classes one character at a time.
const ranges = [
  [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0x17f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff],
  [0x590, 0x6ff], [0x900, 0x97f], [0x2000, 0x206f], [0x2100, 0x22ff], [0x3000, 0x30ff],
  [0x4e00, 0x4fff], [0xac00, 0xacff], [0xff00, 0xffef], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff],
];
while (corpus.length < 420) {
  let s = "";
  for (let k = count(5, 40); k > 0; --k) {
    const [lo, hi] = pick(ranges);
    s += String.fromCodePoint(count(lo, hi));
  }
  corpus.push(s);
}
// A long document: prose and code repeated, to cover long inputs.
corpus.push(Array.from({ length: 30 }, () => pick(prose) + pick(seps) + pick(code)).join("\n"));

process.stdout.write(corpus.map((text) => JSON.stringify({ text })).join("\n") + "\n");
