#!/usr/bin/env python3
"""EfficientNet-Lite in plain PyTorch, from the same legacy .pth the Rust code loads.

The PyTorch baseline for `likeness-bench cnn`, and the reference the Rust embedding is tested
against. Independent of the Rust code: the architecture is written here with torch.nn.functional
(TensorFlow "SAME" padding, ReLU6, BatchNorm eps 1e-3, no squeeze-excite).

Input is raw RGB bytes: N images of SIZE x SIZE x 3 (uint8, row-major), already resized and
cropped, so both implementations see identical pixels.

  cnn_torch.py embed --weights W.pth --variant lite0 --raw FILE --n N --size S   -> JSON lines
  cnn_torch.py bench --weights W.pth --variant lite0 --raw FILE --n N --size S \
                     --batch B --threads T --iters I                              -> JSON
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

BN_EPS = 1e-3
STAGES = {  # (expand, kernel, stride) per stage; repeats per variant
    "kernels": [3, 3, 5, 3, 5, 5, 3],
    "strides": [1, 2, 2, 2, 1, 2, 1],
}
REPEATS = {"lite0": [1, 2, 2, 3, 3, 4, 1], "lite2": [1, 3, 3, 4, 4, 5, 1]}


def same_pad(x, k, s):
    """TensorFlow SAME padding: extra pixel on the bottom/right."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class Lite(torch.nn.Module):
    def __init__(self, sd, variant):
        super().__init__()
        self.sd = {k: v.float() for k, v in sd.items()}
        self.blocks = []
        i = 0
        for stage, r in enumerate(REPEATS[variant]):
            for rep in range(r):
                p = f"_blocks.{i}."
                self.blocks.append((p, STAGES["strides"][stage] if rep == 0 else 1))
                i += 1
        assert f"_blocks.{i}._depthwise_conv.weight" not in self.sd, "wrong variant"

    def bn(self, x, p):
        sd = self.sd
        return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                            False, 0.0, BN_EPS)

    def features(self, x):
        sd = self.sd
        x = F.relu6(self.bn(F.conv2d(same_pad(x, 3, 2), sd["_conv_stem.weight"], stride=2), "_bn0."))
        for p, s in self.blocks:
            inp = x
            if p + "_expand_conv.weight" in sd:
                x = F.relu6(self.bn(F.conv2d(x, sd[p + "_expand_conv.weight"]), p + "_bn0."))
            w = sd[p + "_depthwise_conv.weight"]
            k = w.shape[-1]
            x = F.relu6(self.bn(F.conv2d(same_pad(x, k, s), w, stride=s, groups=w.shape[0]), p + "_bn1."))
            x = self.bn(F.conv2d(x, sd[p + "_project_conv.weight"]), p + "_bn2.")
            if s == 1 and inp.shape[1] == x.shape[1]:
                x = x + inp
        x = F.relu6(self.bn(F.conv2d(x, sd["_conv_head.weight"]), "_bn1."))
        return x.mean(dim=(2, 3))

    def forward(self, x):
        pooled = self.features(x)
        logits = F.linear(pooled, self.sd["_fc.weight"], self.sd["_fc.bias"])
        return pooled, logits


def load_raw(path, n, size):
    data = open(path, "rb").read()
    assert len(data) == n * size * size * 3, f"{path}: {len(data)} bytes, expected {n}x{size}x{size}x3"
    x = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(n, size, size, 3)
    return ((x.float() - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["embed", "bench"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--variant", default="lite0", choices=sorted(REPEATS))
    ap.add_argument("--raw", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iters", type=int, default=1)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    sd = torch.load(a.weights, map_location="cpu")
    model = Lite(sd, a.variant)
    x = load_raw(a.raw, a.n, a.size)
    with torch.inference_mode():
        if a.mode == "embed":
            pooled, logits = model(x)
            for p, l in zip(pooled, logits):
                norm = float(p.norm())
                print(json.dumps({"norm": norm, "embedding": (p / norm).tolist(), "logits": l.tolist()}))
            return
        # bench: warm up on one batch, then time `iters` passes over all images.
        model(x[: a.batch])
        t0 = time.perf_counter()
        for _ in range(a.iters):
            for i in range(0, a.n, a.batch):
                model(x[i:i + a.batch])
        dt = time.perf_counter() - t0
        print(json.dumps({"images": a.n * a.iters, "seconds": dt, "images_per_s": a.n * a.iters / dt,
                          "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
