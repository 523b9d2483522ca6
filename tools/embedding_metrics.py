#!/usr/bin/env python3
"""Agreement of quantized sentence embeddings with float ones (NumPy only).

  embedding_metrics.py FLOAT.npy QUANTIZED.npy   → "mean_cosine min_cosine spearman"

mean/min cosine: between each sentence's float and quantized embedding; spearman: Spearman's rank
correlation between the float and the quantized pairwise-similarity matrices (upper triangle,
i < j; average ranks for ties), i.e. how well quantization keeps the order of similarities that
retrieval and clustering use.
"""
import sys

import numpy as np


def ranks(values):
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values), dtype=np.float64)
    result[order] = np.arange(len(values), dtype=np.float64)
    # average ranks over ties
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        if end > start:
            result[order[start:end + 1]] = (start + end) / 2
        start = end + 1
    return result


def metrics(reference, quantized):
    a = reference.astype(np.float64)
    b = quantized.astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    upper = np.triu_indices(len(a), 1)
    ra = ranks((a @ a.T)[upper])
    rb = ranks((b @ b.T)[upper])
    spearman = np.corrcoef(ra, rb)[0, 1]
    return cosine.mean(), cosine.min(), spearman


if __name__ == "__main__":
    reference, quantized = np.load(sys.argv[1]), np.load(sys.argv[2])
    if reference.shape != quantized.shape:
        sys.exit(f"shapes differ: {reference.shape} vs {quantized.shape}")
    print("%.4f %.4f %.4f" % metrics(reference, quantized))
