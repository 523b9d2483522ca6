#!/usr/bin/env python3
"""An independent NumPy forward of a llama GGUF, for ShardQuant's float-fidelity check (DESIGN.md §11).

Nothing of ShardQuant is used: the `gguf` package reads and dequantizes the checkpoint, the
`tokenizers` package tokenizes (a byte-level BPE built from the GGUF's own vocabulary and merges,
SmolLM2's digit split, no added tokens, no BOS), and the forward is written here from the Llama
definition in float64: RMSNorm, rotary embeddings in llama.cpp's adjacent-pair layout (on GGUF's
own row order, so the permutation ShardQuant undoes is not undone here), grouped-query causal
attention, SwiGLU, tied output embedding.

    python tools/llama_reference.py MODEL.gguf TEXT WINDOW MAX_WINDOWS [LOGITS.npy]

prints one JSON line (perplexity, tokens_scored, windows, first_ids) with the perplexity over
non-overlapping windows scored from their first token, and writes the first window's logits
[window, vocabulary] (float32) to LOGITS.npy when given.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer, models, pre_tokenizers


def field_strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[index]).decode("utf-8") for index in field.data]


def field_value(reader, key, default=None):
    if key not in reader.fields:
        return default
    field = reader.fields[key]
    return field.parts[field.data[0]][0].item()


def main():
    path, text_path, window, max_windows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    logits_path = sys.argv[5] if len(sys.argv) > 5 else None
    reader = GGUFReader(path)
    tensors = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        tensors[tensor.name] = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float64)
    hidden = field_value(reader, "llama.embedding_length")
    layers = field_value(reader, "llama.block_count")
    heads = field_value(reader, "llama.attention.head_count")
    kv_heads = field_value(reader, "llama.attention.head_count_kv", heads)
    epsilon = field_value(reader, "llama.attention.layer_norm_rms_epsilon")
    base = field_value(reader, "llama.rope.freq_base", 10000.0)
    d = hidden // heads

    tokens, merges = field_strings(reader, "tokenizer.ggml.tokens"), field_strings(reader, "tokenizer.ggml.merges")
    vocabulary = {}
    for index, token in enumerate(tokens):
        vocabulary.setdefault(token, index)
    tokenizer = Tokenizer(models.BPE(vocabulary, [tuple(m.split(" ")) for m in merges]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    with open(text_path, encoding="utf-8") as f:  # universal newlines
        ids = tokenizer.encode(f.read()).ids

    embedding = tensors["token_embd.weight"]
    head = tensors.get("output.weight", embedding)

    def rms_norm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + epsilon) * weight

    def rope_pairs(x, count):
        # llama.cpp's layout: features (2i, 2i+1) of each head turn by p * base^(-2i/d).
        s = x.shape[0]
        x = x.reshape(s, count, d // 2, 2)
        angles = np.arange(s)[:, None] * base ** (-2.0 * np.arange(d // 2) / d)
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = x[..., 0], x[..., 1]
        return np.stack([a * cos - b * sin, b * cos + a * sin], -1).reshape(s, count * d)

    def forward(chunk):
        s = len(chunk)
        x = embedding[chunk]
        mask = np.triu(np.full((s, s), -np.inf), 1)
        for layer in range(layers):
            p = f"blk.{layer}."
            h = rms_norm(x, tensors[p + "attn_norm.weight"])
            q = rope_pairs(h @ tensors[p + "attn_q.weight"].T, heads).reshape(s, heads, d)
            k = rope_pairs(h @ tensors[p + "attn_k.weight"].T, kv_heads).reshape(s, kv_heads, d)
            v = (h @ tensors[p + "attn_v.weight"].T).reshape(s, kv_heads, d)
            context = np.empty((s, heads, d))
            for index in range(heads):
                g = index // (heads // kv_heads)
                scores = q[:, index] @ k[:, g].T / np.sqrt(d) + mask
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                context[:, index] = (scores / scores.sum(-1, keepdims=True)) @ v[:, g]
            x = x + context.reshape(s, hidden) @ tensors[p + "attn_output.weight"].T
            h = rms_norm(x, tensors[p + "ffn_norm.weight"])
            gate = h @ tensors[p + "ffn_gate.weight"].T
            up = h @ tensors[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ tensors[p + "ffn_down.weight"].T
        return rms_norm(x, tensors["output_norm.weight"]) @ head.T

    nll, windows = [], 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start:start + window]
        if len(chunk) < 2 or windows >= max_windows:
            break
        logits = forward(chunk)
        if windows == 0 and logits_path:
            np.save(logits_path, logits.astype(np.float32))
        shifted = logits - logits.max(-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        nll += list(-logp[np.arange(len(chunk) - 1), chunk[1:]])
        windows += 1
    print(json.dumps({"perplexity": float(np.exp(np.mean(nll))), "tokens_scored": len(nll), "windows": windows,
                      "first_ids": ids[:16]}))


if __name__ == "__main__":
    main()
