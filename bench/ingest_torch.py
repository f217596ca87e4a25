#!/usr/bin/env python3
"""The Python ingest pipeline `bench/ingest.sh` compares likeness with: Pillow + PyTorch.

Every image file under the folders: Pillow opens it, `draft()` lets libjpeg-turbo decode a JPEG
at 1/2, 1/4 or 1/8 in the DCT domain (both sides still at least 256 px), EXIF orientation is
applied, the shorter side is resized to 256 (antialiased bilinear) and the centre 224 square
cut, then EfficientNet-Lite0 (`cnn_torch.py`, the same weights likeness loads) embeds batches of
16 with THREADS torch threads. Decoding runs on THREADS worker threads (Pillow releases the GIL
while decoding and resizing) ahead of the network, as a DataLoader would. The embeddings are
written to one .npy file, fsync'ed. Prints one JSON object: images, seconds, images_per_s,
peak RSS.

  ingest_torch.py --weights W.pth --threads T --out E.npy DIR...
"""
import argparse
import concurrent.futures as cf
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn_torch import Lite  # noqa: E402

EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def prepare(path):
    im = Image.open(path)
    if im.format == "JPEG":
        im.draft("RGB", (256, 256))
    im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        if "A" in im.getbands():
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im.convert("RGBA"))
        im = im.convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    return np.asarray(im.crop((l, t, l + 224, t + 224)), dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted(
        os.path.join(d, f) for root in a.dirs for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(EXTS)
    )
    model = Lite(torch.load(a.weights, map_location="cpu"), "lite0")
    with torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224))  # warm-up, outside the timing
        t0 = time.perf_counter()
        out = []
        with cf.ThreadPoolExecutor(a.threads) as pool:
            crops = pool.map(prepare, files)
            batch = []
            for c in crops:
                batch.append(c)
                if len(batch) == a.batch:
                    out.append(embed(model, batch))
                    batch = []
            if batch:
                out.append(embed(model, batch))
        emb = np.concatenate(out)
        with open(a.out, "wb") as f:
            np.save(f, emb)
            f.flush()
            os.fsync(f.fileno())
        dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": len(files), "seconds": dt, "images_per_s": len(files) / dt, "threads": a.threads,
                      "peak_rss_mb": rss_mb, "torch": torch.__version__}))


def embed(model, batch):
    x = torch.from_numpy(np.stack(batch)).float()
    x = ((x - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
    pooled, _ = model(x)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


if __name__ == "__main__":
    sys.exit(main())
