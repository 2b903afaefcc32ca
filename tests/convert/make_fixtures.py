#!/usr/bin/env python3
"""Writes the fixtures of tests/convert/train_fixtures.sh with NumPy and h5py themselves
(never with pcn_dist), so the converters are tested on files as users have them.

    /tmp/w/venv/bin/python tests/convert/make_fixtures.py tests/convert
    (run so with NumPy 2.4.6 and h5py 3.16.0; the files are committed, this script need
    not run again)

One small, learnable 4-class problem, 256 training and 64 test rows, in four containers:
  plain.npz       np.savez (entries stored): x_train, y_train, x_test, y_test (Keras's
                  mnist.npz names); x float32 [N, 32], y uint8 [N]
  compressed.npz  np.savez_compressed (entries deflated), other names: images_train,
                  labels_train, images_test, labels_test; x uint8 [N, 8, 8] images (the
                  class lights one quadrant), y int32 [N]
  npy/            four .npy files: x int16 [N, 4, 8] (the float problem times 1000,
                  rounded), y int64 [N, 1]
  plain.h5        h5py, datasets /features/train, /features/test (float32 [N, 32], chunked
                  and gzip-compressed) and /labels/train, /labels/test (int64 [N])
Class c raises features 8c .. 8c+7 by 2 over N(0, 0.5) noise, so a small network learns it
well (chance is 0.25).
"""
import os
import sys

import h5py
import numpy as np

N_TRAIN, N_TEST, D, K = 256, 64, 32, 4


def problem(rng, n):
    y = rng.permutation(np.arange(n) % K)
    x = rng.normal(0.0, 0.5, size=(n, D))
    for c in range(K):
        x[y == c, 8 * c:8 * c + 8] += 2.0
    return x.astype(np.float32), y


def images(rng, y):
    img = rng.integers(0, 40, size=(len(y), 8, 8))
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        img[i, 4 * r:4 * r + 4, 4 * q:4 * q + 4] += 180
    return img.astype(np.uint8)


def main(out):
    rng = np.random.default_rng(16)
    xtr, ytr = problem(rng, N_TRAIN)
    xte, yte = problem(rng, N_TEST)
    np.savez(os.path.join(out, "plain.npz"), x_train=xtr, y_train=ytr.astype(np.uint8),
             x_test=xte, y_test=yte.astype(np.uint8))
    np.savez_compressed(os.path.join(out, "compressed.npz"),
                        images_train=images(rng, ytr), labels_train=ytr.astype(np.int32),
                        images_test=images(rng, yte), labels_test=yte.astype(np.int32))
    os.makedirs(os.path.join(out, "npy"), exist_ok=True)
    for name, a in [("x_train", xtr), ("x_test", xte)]:
        np.save(os.path.join(out, "npy", name + ".npy"),
                np.round(a * 1000).astype(np.int16).reshape(-1, 4, 8))
    for name, a in [("y_train", ytr), ("y_test", yte)]:
        np.save(os.path.join(out, "npy", name + ".npy"), a.astype(np.int64).reshape(-1, 1))
    with h5py.File(os.path.join(out, "plain.h5"), "w") as f:
        f.create_dataset("features/train", data=xtr, chunks=(64, D), compression="gzip")
        f.create_dataset("features/test", data=xte, chunks=(64, D), compression="gzip")
        f.create_dataset("labels/train", data=ytr.astype(np.int64))
        f.create_dataset("labels/test", data=yte.astype(np.int64))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
