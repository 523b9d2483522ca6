#!/usr/bin/env python3
"""Writes data/digits/{images,labels}.npy from the copy of the UCI handwritten digits that
scikit-learn ships (sklearn/datasets/data/digits.csv.gz, read through sklearn.datasets.load_digits):
1,797 8×8 images with pixels 0..16 (uint8 [1797, 64]) and their labels 0..9 (uint8 [1797]), in
scikit-learn's order. The split (sample i is a test sample when i % 5 == 0: 360 test, 1,437 train)
is applied by ShardModels' DigitsDataset, not here. Rerun by hand:
  python3 -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-learn numpy && /tmp/sk/bin/python tools/make_digits_dataset.py
"""
import os

import numpy as np
import sklearn
from sklearn.datasets import load_digits

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
digits = load_digits()
images = digits.data.astype(np.uint8)
labels = digits.target.astype(np.uint8)
assert images.shape == (1797, 64) and labels.shape == (1797,) and images.max() == 16
np.save(os.path.join(root, "data/digits/images.npy"), images)
np.save(os.path.join(root, "data/digits/labels.npy"), labels)
print(f"scikit-learn {sklearn.__version__}: {images.shape[0]} images")
