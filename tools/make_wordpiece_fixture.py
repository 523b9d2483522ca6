#!/usr/bin/env python3
"""Golden token ids for ShardText's WordPieceTokenizer, from the real `tokenizers` package.

Reads the all-MiniLM-L6-v2 checkpoint's tokenizer.json and vocab.txt (launch/setup puts them in
~/.cache/shardquant/minilm/model), encodes every evaluation sentence of examples/minilm and a set of
hard cases (accents, punctuation runs, Chinese characters, unknown words, very long words, control
and white-space characters), and writes
  Tests/ShardTextTests/Fixtures/wordpiece_golden.json  ({"texts": [...], "ids": [[...], ...]})
  Tests/ShardTextTests/Fixtures/minilm_vocab.txt       (a copy of vocab.txt; Apache-2.0, see README there)

Rerun by hand after changing the sentences:
  python3 -m venv /tmp/tok && /tmp/tok/bin/pip install tokenizers==0.23.3
  /tmp/tok/bin/python tools/make_wordpiece_fixture.py [MODEL_DIR]
"""
import json
import os
import shutil
import sys

from tokenizers import Tokenizer

HARD_CASES = [
    "Crème brûlée, façade, naïve, Ångström, São Paulo, Zoë, Øresund, Łódź.",
    "ÀÉÎÕÜ àéîõü ÇÑ çñ İstanbul ǅemal ﬁnance",
    "Wow!!! What?!?! ...and then---nothing;;; (really) [sure] {ok} <tag>",
    "\"Quoted\" 'single' «guillemets» „German“ ‘curly’ “double” — en–dash",
    "東京タワーと北京烤鸭 and 한국어 text, 中文字符混合English words.",
    "𠀀𠀁 rare CJK extension B characters and 豈 compatibility ideographs",
    "xyzzqwvblorptastic qwxzzy flibbertigibbetous zzzzzzzzzz",
    "Pneumonoultramicroscopicsilicovolcanoconiosis and hippopotomonstrosesquippedaliophobia",
    "a" * 101 + " is longer than a hundred characters",
    "internationalization electroencephalographically counterrevolutionaries",
    "Tabs\tnew\nlines\r\nand\u00a0no-break\u2003em\u3000ideographic spaces",
    "zero\u200bwidth\u200djoiner\ufeffbom and soft\u00adhyphen",
    "control\x07bell\x1bescape\x00null \ufffd replacement",
    "Emoji 😀🎉👍🏽 and symbols ©®™ ± × ÷ € £ ¥ ° µ",
    "Math: 3.14159, 1e-9, 2^10 = 1024, a+b=c, 50% off, #1, @user, ~home/dir",
    "URLs https://example.com/path?q=1&r=2#frag and emails a.b@c.org",
    "ΕΛΛΗΝΙΚΆ γράμματα, русский ТЕКСТ, עברית, العربية",
    "don't can't won't shouldn't y'all o'clock rock'n'roll",
    "",
    "   ",
]


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/shardquant/minilm/model")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tokenizer = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    with open(os.path.join(root, "examples/minilm/evaluation.txt"), encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f if line.strip()]
    texts = sentences + HARD_CASES
    ids = [tokenizer.encode(text).ids for text in texts]
    fixtures = os.path.join(root, "Tests/ShardTextTests/Fixtures")
    os.makedirs(fixtures, exist_ok=True)
    with open(os.path.join(fixtures, "wordpiece_golden.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/make_wordpiece_fixture.py", "tokenizers": __import__("tokenizers").__version__,
                   "texts": texts, "ids": ids}, f, ensure_ascii=True, indent=0)
        f.write("\n")
    shutil.copyfile(os.path.join(model, "vocab.txt"), os.path.join(fixtures, "minilm_vocab.txt"))
    print(f"{len(texts)} texts ({len(sentences)} evaluation sentences, {len(HARD_CASES)} hard cases)")


if __name__ == "__main__":
    main()
