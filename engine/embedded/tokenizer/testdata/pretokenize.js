// Generates pretokenize.json: random strings and how each pre-tokenizer cuts
// them, by the regular expressions llama.cpp and Hugging Face use, run by V8
// (whose Unicode regexps have the lookahead Go's regexp lacks).
// Run: node pretokenize.js > pretokenize.json
const parts = ["Hello", " world", "'s", "'S", "'ll", " 12345", "  ", "\n\n", "\t", "!!", "?", " é", "日本語", "🙂", "x", " the", "ing", "1", "...", " I'M", "don't", "\r\n", " ", "a", "--", "$5", "<tag>", "ÄÖÜ", "ﬁ", "\u00a0", "\u2003", "ß", "İ", "a+b=1234"];
let seed = 1;
function rnd(n) { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; }
const gpt2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const llama3 = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
const qwen2 = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
// Matches and the text between them are all pieces, as in llama.cpp.
function split(s, re) {
  const out = []; let last = 0;
  for (const m of s.matchAll(re)) {
    if (m.index > last) out.push(s.slice(last, m.index));
    if (m[0].length) out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push(s.slice(last));
  return out;
}
const passes = (s, res) => res.reduce((pieces, re) => pieces.flatMap(p => split(p, re)), [s]);
const cases = [];
for (let i = 0; i < 400; i++) {
  let s = "";
  for (let j = rnd(10); j > 0; j--) s += parts[rnd(parts.length)];
  cases.push({
    text: s,
    "gpt-2": passes(s, [gpt2]),
    "llama-bpe": passes(s, [llama3]),
    "qwen2": passes(s, [qwen2]),
    "smollm": passes(s, [/\p{N}/gu, gpt2]),
    "default": passes(s, [/[\p{P}\$\+<=>\^~\|]+/gu, gpt2, /\p{N}+/gu, /[0-9][0-9][0-9]/gu]),
  });
}
console.log(JSON.stringify(cases, null, 0));
