#!/usr/bin/env python3
"""Golden token ids for ShardText's ByteLevelBPETokenizer, from the real `tokenizers` package.

Builds a `tokenizers` byte-level BPE from the SmolLM2 GGUF's own vocabulary and merges
(`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`, read with the `gguf` package) and SmolLM2's
pre-tokenizer (`Digits(individual_digits=True)` then `ByteLevel(add_prefix_space=False)`, as its
tokenizer.json has it; no added tokens, so special tokens read as plain text, no BOS), encodes the
project's texts (examples/llama, examples/minilm) and hard cases, and writes
  Tests/ShardTextTests/Fixtures/bpe_golden.json  ({"texts": [...], "ids": [[...], ...]})
The Swift test reads the same GGUF from the cache launch/setup fills.

Rerun by hand after changing the texts:
  python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers==0.23.3 gguf==0.19.0
  /tmp/tok/bin/python tools/make_bpe_fixture.py [SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import sys

import gguf
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers

HARD_CASES = [
    "In 2024, 1234567 people paid $3.50 (or 3,50 €) for 12th-century items; ½ and ² and ٣ too.",
    "Spaces:  two,   three,\t\ttabs,\n\nnewlines, trailing   ",
    "   leading spaces and a lone\u00a0no-break space\u2003em space\u3000ideographic",
    "\r\nWindows line\r\nends and \r old Mac ones",
    "Emoji 😀🎉👍🏽 and flags 🇫🇷🇯🇵, symbols ©®™ ± × ÷ € £ ¥ ° µ",
    "東京タワーと北京烤鸭 and 한국어 text, 中文字符混合English words.",
    "Crème brûlée, façade, naïve, Ångström, São Paulo, İstanbul, Łódź.",
    "don't can't won't shouldn't y'all o'clock rock'n'roll I'M YOU'LL 'S 'sup ''s",
    "The <|im_start|>user\nHello<|im_end|> markers and <|endoftext|> read as text.",
    "code: def f(x):\n    return x**2 + 1  # comment\n\tif a != b: print(\"ok\")",
    "ΕΛΛΗΝΙΚΆ γράμματα, русский ТЕКСТ, עברית, العربية, हिन्दी",
    "zero\u200bwidth\u200djoiner\ufeffbom and soft\u00adhyphen",
    "control\x07bell\x1bescape\x00null \ufffd replacement",
    "bytes without a token: a\x04b \x06\x14x\x16 y\x1dz",
    "a" * 300,
    "!!!???...---;;;   ",
    " ",
    "",
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/shardquant/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    reader = gguf.GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[index]).decode("utf-8") for index in field.data]

    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    vocabulary = {}
    for index, token in enumerate(tokens):
        vocabulary.setdefault(token, index)
    tokenizer = Tokenizer(models.BPE(vocabulary, [tuple(merge.split(" ")) for merge in merges]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    texts = []
    for name in ["examples/llama/GPL-3.txt", "examples/llama/GPL-2.txt"]:
        with open(os.path.join(root, name), encoding="utf-8") as f:
            texts.append(f.read())
    with open(os.path.join(root, "examples/minilm/evaluation.txt"), encoding="utf-8") as f:
        texts += [line.rstrip("\n") for line in f if line.strip()]
    texts += HARD_CASES
    ids = [tokenizer.encode(text).ids for text in texts]
    fixtures = os.path.join(root, "Tests/ShardTextTests/Fixtures")
    with open(os.path.join(fixtures, "bpe_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_bpe_fixture.py", "tokenizers": tokenizers.__version__,
                   "gguf": os.path.basename(path), "texts": texts, "ids": ids}, f, ensure_ascii=True, indent=0)
    print(f"{len(texts)} texts, {sum(map(len, ids))} ids; {len(tokens)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
