#!/usr/bin/env python3
"""A NumPy reference for sentence embeddings of a BertModel checkpoint (all-MiniLM-L6-v2), written
from the checkpoint's own definition, independent of ShardQuant's Swift code:

  ids      = tokenizers' tokenizer.json (the real package), no truncation below 256 tokens
  x        = LayerNorm(word[ids] + position[0..S) + token_type[0])             (eps from config.json)
  per layer: x = LN(x + Wo·attention(Wq x, Wk x, Wv x; padding masked)),  x = LN(x + W2·gelu_erf(W1 x))
  embedding = mean of x over the attention mask, divided by its L2 norm         (sentence-transformers)

Computed in float64. Usage:
  minilm_reference.py MODEL_DIR TEXT_FILE OUT.npy [--batch 16]
"""
import argparse
import json
import math
import os

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(weights, config, ids, mask):
    w = lambda name: weights[name].astype(np.float64)
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    batch, length = ids.shape
    x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[:length][None]
    x = x + w("embeddings.token_type_embeddings.weight")[0][None, None]
    x = layer_norm(x, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"), eps)
    hidden = x.shape[-1]
    d = hidden // heads
    additive = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        linear = lambda t, name: t @ w(p + name + ".weight").T + w(p + name + ".bias")
        split = lambda t: t.reshape(batch, length, heads, d).transpose(0, 2, 1, 3)
        q, k, v = (split(linear(x, "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + additive
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probabilities = scores / scores.sum(axis=-1, keepdims=True)
        context = (probabilities @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = layer_norm(x + linear(context, "attention.output.dense"), w(p + "attention.output.LayerNorm.weight"),
                       w(p + "attention.output.LayerNorm.bias"), eps)
        h = gelu(linear(x, "intermediate.dense"))
        x = layer_norm(x + linear(h, "output.dense"), w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias"), eps)
    m = mask[:, :, None].astype(np.float64)
    pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("text")
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ids-out", help="also write the token ids (padded with -1) to this .npy")
    args = parser.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    weights = load_file(os.path.join(args.model, "model.safetensors"))
    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()
    with open(args.text, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f if line.strip()]
    encoded = [tokenizer.encode(s).ids for s in sentences]
    outputs = []
    for start in range(0, len(encoded), args.batch):
        chunk = encoded[start:start + args.batch]
        length = max(len(e) for e in chunk)
        ids = np.zeros((len(chunk), length), dtype=np.int64)
        mask = np.zeros((len(chunk), length), dtype=np.int64)
        for row, e in enumerate(chunk):
            ids[row, :len(e)] = e
            mask[row, :len(e)] = 1
        outputs.append(embed(weights, config, ids, mask))
    np.save(args.out, np.concatenate(outputs).astype(np.float32))
    if args.ids_out:
        width = max(len(e) for e in encoded)
        padded = np.full((len(encoded), width), -1, dtype=np.int64)
        for row, e in enumerate(encoded):
            padded[row, :len(e)] = e
        np.save(args.ids_out, padded)
    print(f"{len(sentences)} sentences → {args.out}")


if __name__ == "__main__":
    main()
