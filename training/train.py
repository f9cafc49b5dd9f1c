#!/usr/bin/python3
"""Train cocoon-tiny, the default model of Cocoon's embedded engine, and write it as GGUF.

Everything happens in this one file, with nothing but Debian packages:

    apt-get install -y python3-torch python3-numpy libopenblas0-pthread bible-kjv

1. Corpus: the King James Bible (public domain), read with the `bible` program of
   Debian's bible-kjv package from the data in bible-kjv-text.
2. Data: ChatML conversations about the verses (quote a verse by reference,
   "Tell me about <word>", "Continue: <half a verse>", ...) plus the plain text of
   every chapter, so both /v1/chat/completions and /v1/completions make sense.
3. Tokenizer: byte-level BPE in the GPT-2 style, trained here.
4. Model: a small Llama (RMSNorm, adjacent-pair RoPE as in llama.cpp's normal mode,
   grouped-query attention, SwiGLU, output head tied to the embedding).
5. Export: GGUF v3, written by hand with struct.

Everything is seeded; a rerun with the same flags on the same machine (same torch,
same thread count) writes the same file.

Run `/usr/bin/python3 training/train.py --help` for the flags. `--sample FILE.gguf`
loads a GGUF back (tokenizer and weights, nothing from the training run) and
generates greedily, which checks the file.
"""

import argparse
import collections
import heapq
import math
import os
import random
import struct
import subprocess
import sys
import time
import unicodedata

# Threads that wait for work must sleep, not spin: the two cores are shared, and
# spinning OpenMP/OpenBLAS threads cost about 5x the CPU time per step there.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Constants of the format
# ---------------------------------------------------------------------------

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIALS = [ENDOFTEXT, IM_START, IM_END]

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

MODEL_NAME = "cocoon-tiny"

# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


def read_kjv():
    """Return the verses of the KJV as a list of (book, chapter, verse, text)."""
    out = subprocess.run(
        ["bible", "-l100000", "Gen1:1-Rev22:21"],
        check=True, capture_output=True, text=True, cwd="/",
    ).stdout
    verses = []
    book, chapter = None, None
    for line in out.split("\n"):
        if not line.strip():
            continue
        if line.startswith("  "):
            num, text = line.strip().split(" ", 1)
            verses.append((book, chapter, int(num), " ".join(text.split())))
        else:
            book, ch = line.rsplit(" ", 1)
            chapter = int(ch)
    if len(verses) != 31102:
        sys.exit("unexpected KJV text: %d verses" % len(verses))
    return verses


# ---------------------------------------------------------------------------
# Training documents
# ---------------------------------------------------------------------------

SYSTEMS = [
    "You are a helpful assistant.",
    "You are a helpful assistant.",
    "You are a helpful assistant.",
    "You are Cocoon Tiny, a small model that answers in the words of the King James Bible.",
    "You are a helpful assistant who quotes the King James Bible.",
    "Answer briefly.",
]

STOPWORDS = set("""
the and that shall unto for his they him them with not all thou thy thee was which
said have from are when this were their then there but one also upon will out into
before come came because what hath shall hast even these those your you our who whom
made make things thing should would them more than over any may did let after went
been every hand about like being again under say saith being where how therefore
said went know know they unto ye neither nor yet now both among shalt wilt art doth
""".split())

IDENTITY = [
    ("Who are you?", "I am Cocoon Tiny, a very small language model. I have read the King James Bible and little else, so I speak in its words."),
    ("What are you?", "I am Cocoon Tiny, a small language model trained on the King James Bible. I know nothing beyond the style of its verses."),
    ("What is your name?", "My name is Cocoon Tiny."),
    ("Hello", "Hello. Ask me for a verse, such as Genesis 1:1, or name a word and I will give you a verse about it."),
    ("Hi", "Hello. Ask me for a verse, or tell me a word and I will find a verse about it."),
    ("Hello!", "Hello. What verse shall I quote for you?"),
    ("What can you do?", "I can quote verses of the King James Bible, find a verse about a word, and continue a verse that you begin."),
    ("Thank you", "You are welcome."),
    ("Thanks!", "You are welcome."),
    ("Goodbye", "Goodbye, and peace be with you."),
]


def split_words(text):
    return [w.strip(".,;:?!()'-").lower() for w in text.split()]


def build_documents(verses, seed, n_chats, plain_passes):
    """Return a list of training documents (strings), deterministically."""
    rng = random.Random(seed)
    docs = []

    # Plain text: every chapter plain_passes times, in varied layouts.
    chapters = collections.OrderedDict()
    for b, c, v, t in verses:
        chapters.setdefault((b, c), []).append((v, t))
    for (b, c), vs in [kv for _ in range(plain_passes) for kv in chapters.items()]:
        style = rng.random()
        if style < 0.5:
            body = "\n".join(t for _, t in vs)
        elif style < 0.75:
            body = "\n".join("%d:%d %s" % (c, v, t) for v, t in vs)
        else:
            body = " ".join(t for _, t in vs)
        if rng.random() < 0.5:
            body = "%s %d\n\n%s" % (b, c, body)
        docs.append(body + "\n")

    # Index of content words -> verses.
    index = collections.defaultdict(list)
    for i, (_, _, _, t) in enumerate(verses):
        for w in set(split_words(t)):
            if len(w) >= 4 and w.isalpha() and w not in STOPWORDS:
                index[w].append(i)
    words = sorted(w for w, ids in index.items() if len(ids) >= 3)

    def ref(i):
        b, c, v, _ = verses[i]
        return "%s %d:%d" % (b, c, v)

    def turn_quote():
        i = rng.randrange(len(verses))
        r = ref(i)
        q = rng.choice([
            "Quote %s", "Quote %s.", "What does %s say?", "Recite %s.", "Read me %s.",
            "%s", "Give me the verse %s.", "Quote %s from the King James Bible.",
            "What is written in %s?", "Please quote %s.",
        ]) % r
        a = verses[i][3]
        if rng.random() < 0.2:
            a = "%s says: %s" % (r, a)
        return q, a

    def turn_about():
        w = rng.choice(words)
        ids = index[w]
        shown = w.capitalize() if rng.random() < 0.3 else w
        q = rng.choice([
            "Tell me about %s", "Tell me about %s.", "What does the Bible say about %s?",
            "Give me a verse about %s.", "A verse about %s, please.", "Say something about %s.",
        ]) % shown
        k = 1 if rng.random() < 0.6 else 2
        picks = sorted(rng.sample(ids, min(k, len(ids))))
        if rng.random() < 0.5:
            a = " ".join(verses[i][3] for i in picks)
        else:
            a = "\n".join("%s: %s" % (ref(i), verses[i][3]) for i in picks)
        return q, a

    def turn_continue():
        while True:
            i = rng.randrange(len(verses))
            ws = verses[i][3].split(" ")
            if len(ws) >= 6:
                break
        cut = rng.randint(len(ws) // 3, (2 * len(ws)) // 3)
        first, rest = " ".join(ws[:cut]), " ".join(ws[cut:])
        q = rng.choice(["Continue: %s", "Continue: %s", "Finish this verse: %s",
                        "Complete the verse: %s", "%s ..."]) % first
        return q, rest

    def turn_next():
        i = rng.randrange(len(verses) - 1)
        if verses[i + 1][:2] != verses[i][:2]:
            return turn_quote()
        q = rng.choice(["What comes after this verse? %s", "What follows: %s"]) % verses[i][3]
        return q, verses[i + 1][3]

    def turn_style():
        i = rng.randrange(len(verses))
        q = rng.choice([
            "Write a verse in the style of the King James Bible.", "Say a verse.",
            "Give me a random verse.", "Tell me something wise.", "Say something.",
            "Write one sentence.", "Quote a proverb.",
        ])
        if q == "Quote a proverb.":
            while verses[i][0] != "Proverbs":
                i = rng.randrange(len(verses))
        return q, verses[i][3]

    def turn_identity():
        return rng.choice(IDENTITY)

    makers = [(turn_quote, 30), (turn_about, 25), (turn_continue, 25), (turn_next, 8),
              (turn_style, 8), (turn_identity, 4)]
    fns = [f for f, _ in makers]
    weights = [w for _, w in makers]
    for _ in range(n_chats):
        parts = []
        if rng.random() < 0.7:
            parts.append(IM_START + "system\n" + rng.choice(SYSTEMS) + IM_END + "\n")
        nturns = 1 if rng.random() < 0.8 else rng.randint(2, 3)
        for _ in range(nturns):
            q, a = rng.choices(fns, weights)[0]()
            parts.append(IM_START + "user\n" + q + IM_END + "\n")
            parts.append(IM_START + "assistant\n" + a + IM_END + "\n")
        docs.append("".join(parts))

    rng.shuffle(docs)
    return docs


# ---------------------------------------------------------------------------
# Byte-level BPE tokenizer (GPT-2 style)
# ---------------------------------------------------------------------------


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}

_CLASS_CACHE = {}


def _cls(ch):
    """'L' letter, 'N' number, 'S' whitespace, 'O' anything else."""
    c = _CLASS_CACHE.get(ch)
    if c is None:
        if ch.isspace():
            c = "S"
        else:
            cat = unicodedata.category(ch)[0]
            c = cat if cat in ("L", "N") else "O"
        _CLASS_CACHE[ch] = c
    return c


_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def pretokenize(text):
    """Split like the GPT-2 regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    (a hand-written scanner, since Python's re has no \\p{..})."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'" and i + 1 < n:
            hit = None
            for s in _CONTRACTIONS:
                if text.startswith(s, i + 1):
                    hit = s
                    break
            if hit is not None:
                out.append(text[i:i + 1 + len(hit)])
                i += 1 + len(hit)
                continue
        c = _cls(ch)
        start = i
        if ch == " " and i + 1 < n and _cls(text[i + 1]) != "S":
            # " ?X+" with the optional space present
            c = _cls(text[i + 1])
            i += 1
        if c != "S":
            j = i
            while j < n and _cls(text[j]) == c:
                j += 1
            out.append(text[start:j])
            i = j
            continue
        # whitespace: \s+(?!\S) then \s+
        j = i
        while j < n and _cls(text[j]) == "S":
            j += 1
        if j < n and j - i >= 2:
            j -= 1
        out.append(text[i:j])
        i = j
    return out


def split_specials(text):
    """Yield (is_special, piece): special tokens are matched as whole strings first."""
    i = 0
    n = len(text)
    while i < n:
        j = text.find("<|", i)
        while j != -1:
            sp = next((s for s in SPECIALS if text.startswith(s, j)), None)
            if sp is not None:
                break
            j = text.find("<|", j + 1)
        if j == -1:
            yield False, text[i:]
            return
        if j > i:
            yield False, text[i:j]
        yield True, sp
        i = j + len(sp)


def map_bytes(s):
    return "".join(BYTE_ENCODER[b] for b in s.encode("utf-8"))


def train_bpe(word_counts, vocab_size):
    """Learn merges from {mapped pre-token: count} until the vocabulary (256 bytes +
    merged tokens + specials) reaches vocab_size. Returns (tokens, merges)."""
    tokens = [BYTE_ENCODER[b] for b in range(256)]
    known = set(tokens)
    target = vocab_size - len(SPECIALS)
    keys = sorted(word_counts)
    words = [list(w) for w in keys]
    counts = [word_counts[w] for w in keys]
    pairs = collections.defaultdict(int)
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pairs[p] += counts[i]
            where[p].add(i)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges = []
    while len(tokens) < target and heap:
        negc, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -negc or negc == 0:
            continue  # stale entry
        a, b = best
        merged = a + b
        merges.append(best)
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
        touched = set()
        for i in sorted(where.pop(best)):
            w = words[i]
            c = counts[i]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:]):
                pairs[p] -= c
                touched.add(p)
            nw = []
            k = 0
            while k < len(w):
                if k + 1 < len(w) and w[k] == a and w[k + 1] == b:
                    nw.append(merged)
                    k += 2
                else:
                    nw.append(w[k])
                    k += 1
            words[i] = nw
            for p in zip(nw, nw[1:]):
                pairs[p] += c
                where[p].add(i)
                touched.add(p)
        for p in touched:
            if pairs[p] > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                pairs.pop(p, None)
        pairs.pop(best, None)
    return tokens + SPECIALS, merges


class Tokenizer:
    def __init__(self, tokens, merges):
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}
        if len(self.ids) != len(tokens):
            raise ValueError("duplicate token strings")
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.merges = merges
        self.cache = {}
        self.special_ids = {s: self.ids[s] for s in SPECIALS}

    def bpe(self, word):
        ids = self.cache.get(word)
        if ids is not None:
            return ids
        syms = list(word)
        ranks = self.ranks
        while len(syms) > 1:
            best, rank = None, None
            for p in zip(syms, syms[1:]):
                r = ranks.get(p)
                if r is not None and (rank is None or r < rank):
                    best, rank = p, r
            if best is None:
                break
            a, b = best
            out = []
            k = 0
            while k < len(syms):
                if k + 1 < len(syms) and syms[k] == a and syms[k + 1] == b:
                    out.append(a + b)
                    k += 2
                else:
                    out.append(syms[k])
                    k += 1
            syms = out
        ids = [self.ids[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        out = []
        for special, piece in split_specials(text):
            if special:
                out.append(self.special_ids[piece])
            else:
                for pt in pretokenize(piece):
                    out.extend(self.bpe(map_bytes(pt)))
        return out

    def decode(self, ids):
        parts = []
        buf = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in self.special_ids:
                parts.append(buf.decode("utf-8", "replace"))
                buf = bytearray()
                parts.append(t)
            else:
                buf.extend(BYTE_DECODER[ch] for ch in t)
        parts.append(buf.decode("utf-8", "replace"))
        return "".join(parts)


def build_tokenizer(docs, vocab_size):
    counts = collections.Counter()
    for d in docs:
        for special, piece in split_specials(d):
            if not special:
                counts.update(pretokenize(piece))
    mapped = collections.Counter()
    for w, c in counts.items():
        mapped[map_bytes(w)] += c
    tokens, merges = train_bpe(mapped, vocab_size)
    return Tokenizer(tokens, merges)


# ---------------------------------------------------------------------------
# Model: exactly the computation of llama.cpp (and of Cocoon's Go engine)
# ---------------------------------------------------------------------------


class Config:
    def __init__(self, vocab, dim, layers, heads, kv_heads, ffn, ctx, eps=1e-5, rope_base=10000.0):
        self.vocab, self.dim, self.layers = vocab, dim, layers
        self.heads, self.kv_heads, self.ffn, self.ctx = heads, kv_heads, ffn, ctx
        self.eps, self.rope_base = eps, rope_base
        self.hd = dim // heads
        assert dim % heads == 0 and heads % kv_heads == 0 and self.hd % 2 == 0


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(cfg, n):
    # angle(pos, i) = pos * base^(-2i/hd) for the pair (x[2i], x[2i+1])
    inv = cfg.rope_base ** (-torch.arange(0, cfg.hd, 2, dtype=torch.float64) / cfg.hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    """x: (B, T, H, hd). llama.cpp NORMAL mode: rotate adjacent pairs."""
    B, T, H, hd = x.shape
    x = x.view(B, T, H, hd // 2, 2)
    x0, x1 = x[..., 0], x[..., 1]
    c = cos[:T].view(1, T, 1, hd // 2)
    s = sin[:T].view(1, T, 1, hd // 2)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).view(B, T, H, hd)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.dim, cfg.hd
        self.attn_norm = nn.Parameter(torch.ones(d))
        self.wq = nn.Linear(d, cfg.heads * hd, bias=False)
        self.wk = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.wv = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.heads * hd, d, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(d))
        self.w_gate = nn.Linear(d, cfg.ffn, bias=False)
        self.w_up = nn.Linear(d, cfg.ffn, bias=False)
        self.w_down = nn.Linear(cfg.ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        B, T, _ = x.shape
        n = rmsnorm(x, self.attn_norm, cfg.eps)
        q = apply_rope(self.wq(n).view(B, T, cfg.heads, cfg.hd), cos, sin)
        k = apply_rope(self.wk(n).view(B, T, cfg.kv_heads, cfg.hd), cos, sin)
        v = self.wv(n).view(B, T, cfg.kv_heads, cfg.hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        g = cfg.heads // cfg.kv_heads
        if g > 1:  # head i uses kv head i // g
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(cfg.hd))
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, cfg.heads * cfg.hd)
        h = x + self.wo(y)
        n = rmsnorm(h, self.ffn_norm, cfg.eps)
        return h + self.w_down(F.silu(self.w_gate(n)) * self.w_up(n))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.out_norm = nn.Parameter(torch.ones(cfg.dim))
        cos, sin = rope_tables(cfg, cfg.ctx)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.triu(torch.ones(cfg.ctx, cfg.ctx, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith("wo.weight") or name.endswith("w_down.weight"):
                    std = 0.02 / math.sqrt(2 * cfg.layers)
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        x = rmsnorm(x, self.out_norm, self.cfg.eps)
        return x @ self.embed.weight.t()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# GGUF v3
# ---------------------------------------------------------------------------

GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, \
    GGUF_STR, GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64 = range(13)
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32
_SCALAR = {GGUF_U8: "<B", GGUF_I8: "<b", GGUF_U16: "<H", GGUF_I16: "<h", GGUF_U32: "<I",
           GGUF_I32: "<i", GGUF_F32: "<f", GGUF_BOOL: "<?", GGUF_U64: "<Q", GGUF_I64: "<q",
           GGUF_F64: "<d"}


def _gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _gval(t, v):
    if t == GGUF_STR:
        return _gstr(v)
    if t == GGUF_ARR:
        et, items = v
        out = [struct.pack("<IQ", et, len(items))]
        out.extend(_gval(et, x) for x in items)
        return b"".join(out)
    return struct.pack(_SCALAR[t], v)


def export_gguf(model, tok, path):
    cfg = model.cfg
    kv = [
        ("general.architecture", GGUF_STR, "llama"),
        ("general.name", GGUF_STR, MODEL_NAME),
        ("general.alignment", GGUF_U32, ALIGN),
        ("general.file_type", GGUF_U32, 1),
        ("llama.context_length", GGUF_U32, cfg.ctx),
        ("llama.embedding_length", GGUF_U32, cfg.dim),
        ("llama.block_count", GGUF_U32, cfg.layers),
        ("llama.feed_forward_length", GGUF_U32, cfg.ffn),
        ("llama.attention.head_count", GGUF_U32, cfg.heads),
        ("llama.attention.head_count_kv", GGUF_U32, cfg.kv_heads),
        ("llama.rope.dimension_count", GGUF_U32, cfg.hd),
        ("llama.attention.layer_norm_rms_epsilon", GGUF_F32, cfg.eps),
        ("llama.rope.freq_base", GGUF_F32, cfg.rope_base),
        ("llama.vocab_size", GGUF_U32, cfg.vocab),
        ("tokenizer.ggml.model", GGUF_STR, "gpt2"),
        ("tokenizer.ggml.pre", GGUF_STR, "gpt-2"),
        ("tokenizer.ggml.tokens", GGUF_ARR, (GGUF_STR, tok.tokens)),
        ("tokenizer.ggml.token_type", GGUF_ARR,
         (GGUF_I32, [3 if t in tok.special_ids else 1 for t in tok.tokens])),
        ("tokenizer.ggml.merges", GGUF_ARR, (GGUF_STR, [a + " " + b for a, b in tok.merges])),
        ("tokenizer.ggml.bos_token_id", GGUF_U32, tok.ids[ENDOFTEXT]),
        ("tokenizer.ggml.eos_token_id", GGUF_U32, tok.ids[IM_END]),
        ("tokenizer.ggml.eot_token_id", GGUF_U32, tok.ids[IM_END]),
        ("tokenizer.ggml.padding_token_id", GGUF_U32, tok.ids[ENDOFTEXT]),
        ("tokenizer.ggml.add_bos_token", GGUF_BOOL, False),
        ("tokenizer.chat_template", GGUF_STR, CHAT_TEMPLATE),
    ]
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    tensors = [("token_embd.weight", sd["embed.weight"])]
    for i in range(cfg.layers):
        p = "blocks.%d." % i
        for gname, tname in [("attn_norm", "attn_norm"), ("attn_q", "wq.weight"),
                             ("attn_k", "wk.weight"), ("attn_v", "wv.weight"),
                             ("attn_output", "wo.weight"), ("ffn_norm", "ffn_norm"),
                             ("ffn_gate", "w_gate.weight"), ("ffn_up", "w_up.weight"),
                             ("ffn_down", "w_down.weight")]:
            tensors.append(("blk.%d.%s.weight" % (i, gname), sd[p + tname]))
    tensors.append(("output_norm.weight", sd["out_norm"]))

    head = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for k, t, v in kv:
        head.append(_gstr(k) + struct.pack("<I", t) + _gval(t, v))
    blobs = []
    offset = 0
    for name, t in tensors:
        a = t.numpy()
        if a.ndim == 2:
            data, gt = a.astype("<f2").tobytes(), GGML_F16
        else:
            data, gt = a.astype("<f4").tobytes(), GGML_F32
        dims = list(reversed(a.shape))  # fastest-varying first
        head.append(_gstr(name) + struct.pack("<I", len(dims)) +
                    struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", gt, offset))
        pad = (-len(data)) % ALIGN
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    header = b"".join(head)
    header += b"\0" * ((-len(header)) % ALIGN)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_gguf(path):
    """Minimal GGUF v3 reader: returns (metadata dict, {name: numpy array in torch shape})."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def rstr():
        nonlocal pos
        n = take("<Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def rval(t):
        if t == GGUF_STR:
            return rstr()
        if t == GGUF_ARR:
            et, n = take("<IQ")
            return [rval(et) for _ in range(n)]
        return take(_SCALAR[t])

    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file")
    pos = 4
    version, nt, nkv = take("<IQQ")
    if version != 3:
        raise ValueError("GGUF version %d" % version)
    meta = {}
    for _ in range(nkv):
        k = rstr()
        meta[k] = rval(take("<I"))
    infos = []
    for _ in range(nt):
        name = rstr()
        nd = take("<I")
        dims = [take("<Q") for _ in range(nd)]
        gt, off = take("<IQ")
        infos.append((name, dims, gt, off))
    align = meta.get("general.alignment", 32)
    base = pos + ((-pos) % align)
    tensors = {}
    for name, dims, gt, off in infos:
        dt = {GGML_F32: "<f4", GGML_F16: "<f2"}[gt]
        cnt = int(np.prod(dims))
        a = np.frombuffer(data, dtype=dt, count=cnt, offset=base + off)
        tensors[name] = a.reshape(list(reversed(dims))).astype(np.float32)
    return meta, tensors


def model_from_gguf(path):
    meta, t = read_gguf(path)
    cfg = Config(
        vocab=meta["llama.vocab_size"], dim=meta["llama.embedding_length"],
        layers=meta["llama.block_count"], heads=meta["llama.attention.head_count"],
        kv_heads=meta["llama.attention.head_count_kv"], ffn=meta["llama.feed_forward_length"],
        ctx=meta["llama.context_length"], eps=meta["llama.attention.layer_norm_rms_epsilon"],
        rope_base=meta["llama.rope.freq_base"])
    assert meta["llama.rope.dimension_count"] == cfg.hd
    model = Llama(cfg)
    sd = {"embed.weight": t["token_embd.weight"], "out_norm": t["output_norm.weight"]}
    names = {"attn_norm": "attn_norm", "attn_q": "wq.weight", "attn_k": "wk.weight",
             "attn_v": "wv.weight", "attn_output": "wo.weight", "ffn_norm": "ffn_norm",
             "ffn_gate": "w_gate.weight", "ffn_up": "w_up.weight", "ffn_down": "w_down.weight"}
    for i in range(cfg.layers):
        for g, n in names.items():
            sd["blocks.%d.%s" % (i, n)] = t["blk.%d.%s.weight" % (i, g)]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(meta["tokenizer.ggml.tokens"], merges)
    return model.eval(), tok, meta


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


@torch.no_grad()
def generate(model, tok, prompt, max_new=80, stop_ids=()):
    ids = tok.encode(prompt)
    out = []
    for _ in range(max_new):
        ctx = (ids + out)[-model.cfg.ctx:]
        logits = model(torch.tensor([ctx]))[0, -1]
        nxt = int(torch.argmax(logits))
        if nxt in stop_ids:
            break
        out.append(nxt)
    return out


def chat_prompt(user, system="You are a helpful assistant."):
    s = ""
    if system:
        s += IM_START + "system\n" + system + IM_END + "\n"
    return s + IM_START + "user\n" + user + IM_END + "\n" + IM_START + "assistant\n"


SAMPLE_PROMPTS = [
    ("text", "In the beginning God created"),
    ("text", "And the LORD said unto Moses,"),
    ("chat", "Quote Genesis 1:3"),
    ("chat", "Tell me about light."),
    ("chat", "Continue: The LORD is my shepherd;"),
    ("chat", "Who are you?"),
]


def show_samples(model, tok, max_new=60):
    im_end, eot = tok.ids[IM_END], tok.ids[ENDOFTEXT]
    for kind, p in SAMPLE_PROMPTS:
        if kind == "text":
            out = generate(model, tok, p, max_new, stop_ids=(eot,))
            print("--- completion, greedy: %r" % p)
            print(p + tok.decode(out))
        else:
            prompt = chat_prompt(p)
            out = generate(model, tok, prompt, max_new, stop_ids=(im_end, eot))
            print("--- chat, greedy: user: %r" % p)
            print("ids: %s" % out[:24])
            print("assistant: " + tok.decode(out))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def lr_at(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def prepare_data(args):
    """Corpus -> documents -> tokenizer -> token stream. The result is cached under
    the checkpoint's directory (it is a pure function of the flags used here)."""
    cache = None
    if args.ckpt:
        cache = os.path.join(os.path.dirname(args.ckpt) or ".", "data-s%d-c%d-p%d-v%d.pt" %
                             (args.seed, args.chats, args.plain_passes, args.vocab))
        if os.path.exists(cache):
            d = torch.load(cache)
            return Tokenizer(d["tokens"], d["merges"]), d["data"]
    verses = read_kjv()
    docs = build_documents(verses, args.seed, args.chats, args.plain_passes)
    print("corpus: %d verses, %d documents, %.1f MB of text" %
          (len(verses), len(docs), sum(len(d) for d in docs) / 1e6), flush=True)
    tok = build_tokenizer(docs, args.vocab)
    print("tokenizer: %d tokens, %d merges" % (len(tok.tokens), len(tok.merges)), flush=True)
    eot = tok.ids[ENDOFTEXT]
    stream = []
    for d in docs:
        stream.append(eot)
        stream.extend(tok.encode(d))
    assert tok.decode(tok.encode(docs[0])) == docs[0]
    data = torch.tensor(stream, dtype=torch.long)
    print("%.2f bytes/token" % (sum(len(d) for d in docs) / len(data)), flush=True)
    if cache:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        torch.save({"tokens": tok.tokens, "merges": tok.merges, "data": data}, cache + ".tmp")
        os.replace(cache + ".tmp", cache)
    return tok, data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/cocoon-tiny.gguf", help="GGUF file to write")
    ap.add_argument("--steps", type=int, default=6000, help="optimizer steps")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--ctx", type=int, default=256, help="context length (trained and in GGUF)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=704)
    ap.add_argument("--vocab", type=int, default=2048, help="vocabulary size incl. 3 special tokens")
    ap.add_argument("--chats", type=int, default=40000, help="number of chat conversations")
    ap.add_argument("--plain-passes", type=int, default=2, help="copies of the plain text of every chapter")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1611)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt", default="training/work/ckpt.pt", help="checkpoint file ('' for none)")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--resume", action="store_true", help="continue from --ckpt")
    ap.add_argument("--sample", metavar="GGUF", help="only load GGUF and generate samples")
    ap.add_argument("--export-only", action="store_true",
                    help="export the model in --ckpt to --out without training (e.g. after a crash)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.sample:
        model, tok, meta = model_from_gguf(args.sample)
        print("loaded %s: %d parameters, vocab %d" % (args.sample, n_params(model), len(tok.tokens)))
        show_samples(model, tok)
        return

    t0 = time.time()
    tok, data = prepare_data(args)
    print("data: %d tokens (%.0fs)" % (len(data), time.time() - t0), flush=True)

    cfg = Config(len(tok.tokens), args.dim, args.layers, args.heads, args.kv_heads, args.ffn, args.ctx)
    model = Llama(cfg)
    print("model: %d parameters (dim %d, layers %d, heads %d/%d, ffn %d, ctx %d, vocab %d)" %
          (n_params(model), cfg.dim, cfg.layers, cfg.heads, cfg.kv_heads, cfg.ffn, cfg.ctx, cfg.vocab), flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    step = 0
    ema = None
    if (args.resume or args.export_only) and args.ckpt and os.path.exists(args.ckpt):
        ck = torch.load(args.ckpt)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, ema = ck["step"], ck["ema"]
        print("resumed at step %d" % step, flush=True)

    T = args.ctx
    n_windows = len(data) - T - 1
    tokens_per_step = args.batch * T
    model.train()
    tstart = time.time()
    s0 = step
    while step < args.steps and not args.export_only:
        g = np.random.default_rng([args.seed, step])  # batch depends only on (seed, step)
        starts = torch.from_numpy(g.integers(0, n_windows, size=args.batch))
        idx = starts[:, None] + torch.arange(T + 1)[None, :]
        batch = data[idx]
        x, y = batch[:, :-1], batch[:, 1:]
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for grp in opt.param_groups:
            grp["lr"] = lr
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        lv = loss.item()
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        if step % 25 == 0 or step == args.steps:
            dt = time.time() - tstart
            print("step %d/%d loss %.4f ema %.4f lr %.2e %.0f tok/s elapsed %.0fs" %
                  (step, args.steps, lv, ema, lr, (step - s0) * tokens_per_step / dt, dt), flush=True)
        if args.ckpt and (step % args.ckpt_every == 0 or step == args.steps):
            os.makedirs(os.path.dirname(args.ckpt) or ".", exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "ema": ema},
                       args.ckpt + ".tmp")
            os.replace(args.ckpt + ".tmp", args.ckpt)

    # Final loss: mean over fixed windows (the same for every run with this seed).
    model.eval()
    g = np.random.default_rng([args.seed, 999999])
    with torch.no_grad():
        losses = []
        for _ in range(8):
            starts = torch.from_numpy(g.integers(0, n_windows, size=args.batch))
            batch = data[starts[:, None] + torch.arange(T + 1)[None, :]]
            logits = model(batch[:, :-1])
            losses.append(F.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1)).item())
    print("final: step %d, ema train loss %.4f, loss on %d fixed windows %.4f; trained %d tokens in %.0fs" %
          (step, ema or 0, 8 * args.batch, sum(losses) / len(losses), step * tokens_per_step, time.time() - tstart), flush=True)

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    export_gguf(model, tok, args.out)
    print("wrote %s (%d bytes)" % (args.out, os.path.getsize(args.out)), flush=True)

    # Check the file: load it back with nothing from this run and generate.
    m2, tok2, _ = model_from_gguf(args.out)
    assert tok2.tokens == tok.tokens and tok2.merges == tok.merges
    show_samples(m2, tok2)


if __name__ == "__main__":
    main()
