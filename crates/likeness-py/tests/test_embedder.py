"""Embedder: paths, bytes, numpy arrays and PIL images give the same vectors; a bad image in a
batch is reported, not fatal."""

import pathlib

import numpy as np
import pytest

import likeness

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def emb():
    return likeness.Embedder(["color", "phash", "texture"])


def test_properties_and_fields(emb):
    assert emb.features == ["color", "phash", "texture"]
    assert emb.dims == {"color": 128, "phash": 64, "texture": 142}
    assert emb.metrics == {"color": "l2", "phash": "hamming", "texture": "l2"}
    fields = emb.fields(index="HNSW16")
    assert [(f.name, f.dim, f.metric, f.index) for f in fields] == [
        ("color", 128, "l2", "HNSW16"),
        ("phash", 64, "hamming", "Flat"),
        ("texture", 142, "l2", "HNSW16"),
    ]
    assert likeness.DEFAULT_FEATURES == ["cnn", "color", "phash"]


def test_one_image_every_input_kind_agrees(emb, data_dir):
    path = data_dir / "photos" / "chelsea.png"
    by_path = emb.embed(str(path))
    assert set(by_path) == {"color", "phash", "texture"}
    assert by_path["color"].dtype == np.float32 and by_path["color"].shape == (128,)
    assert by_path["phash"].dtype == np.uint8 and by_path["phash"].shape == (8,)
    by_pathlib = emb.embed(pathlib.Path(path))
    by_bytes = emb.embed(path.read_bytes())
    image = PIL.open(path)
    by_pil = emb.embed(image)
    by_array = emb.embed(np.asarray(image.convert("RGB")))
    for other in (by_pathlib, by_bytes, by_pil, by_array):
        for name in by_path:
            np.testing.assert_array_equal(other[name], by_path[name])


def test_batch_with_a_bad_image(emb, photos, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    items = [str(photos[0]), str(bad), photos[1].read_bytes(), str(tmp_path / "missing.png"), str(photos[2])]
    out = emb.embed(items)
    assert out.count == 5 and len(out) == 3 and set(out.keys()) == {"color", "phash", "texture"}
    assert out["color"].shape == (5, 128) and out["phash"].shape == (5, 8)
    assert out.ok.tolist() == [True, False, True, False, True]
    assert [i for i, _ in out.errors] == [1, 3]
    assert "broken.jpg" in out.errors[0][1] and "missing.png" in out.errors[1][1]
    assert not out["color"][1].any()
    assert out.info[1] is None and out.info[0]["format"] == "png"
    np.testing.assert_array_equal(out["color"][0], emb.embed(str(photos[0]))["color"])
    np.testing.assert_array_equal(out["color"][2], emb.embed(str(photos[1]))["color"])


def test_all_paths_batch_equals_one_by_one(emb, photos):
    paths = [str(p) for p in photos[:6]]
    out = emb.embed(paths)
    assert out.errors == []
    for i, p in enumerate(paths):
        one = emb.embed(p)
        np.testing.assert_array_equal(out["texture"][i], one["texture"])
        np.testing.assert_array_equal(out["phash"][i], one["phash"])


def test_single_bad_image_raises(emb, tmp_path):
    with pytest.raises(likeness.ImageError, match="cannot decode|not a supported image"):
        emb.embed(b"definitely not an image")
    with pytest.raises(likeness.ImageError, match="nope.png"):
        emb.embed(str(tmp_path / "nope.png"))


def test_input_type_errors(emb):
    with pytest.raises(TypeError, match="uint8"):
        emb.embed(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(likeness.DimensionError, match=r"\(height, width, 3\)"):
        emb.embed(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(TypeError, match="an image is a path"):
        emb.embed(42)


def test_unknown_feature_and_device():
    with pytest.raises(likeness.InvalidArgumentError, match="unknown feature"):
        likeness.Embedder(["colour"])
    with pytest.raises(likeness.InvalidArgumentError, match="unknown device"):
        likeness.Embedder(["color"], device="tpu")


def test_cnn_embedding(model_dir, data_dir):
    emb = likeness.Embedder(["cnn"], model_dir=model_dir)
    assert emb.dims == {"cnn": 1280} and emb.metrics == {"cnn": "cosine"}
    cat = data_dir / "photos" / "chelsea.png"
    v = emb.embed(str(cat))["cnn"]
    assert v.shape == (1280,) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-3
    batch = emb.embed([str(cat), str(data_dir / "photos" / "rocket.jpg"), cat.read_bytes()])
    assert batch.errors == []
    np.testing.assert_allclose(batch["cnn"][0], v, atol=1e-5)
    np.testing.assert_allclose(batch["cnn"][2], v, atol=1e-5)
    assert float(batch["cnn"][0] @ batch["cnn"][1]) < 0.9


def write_linear_head(stem, weight, bias):
    """A projection head artifact as `likeness train` saves it: safetensors + json."""
    import json
    import struct

    tensors = {"fc1.weight": weight.astype("<f4"), "fc1.bias": bias.astype("<f4")}
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        blob = t.tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    stem.with_suffix(".safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    info = {
        "version": 1, "in_dim": weight.shape[1], "out_dim": weight.shape[0], "hidden": 0, "metric": "cosine",
        "base": "cnn", "data_hash": "test", "seed": 1, "created": "2026-01-01T00:00:00Z",
    }
    stem.with_suffix(".json").write_text(json.dumps(info))


def test_trained_head(model_dir, data_dir, tmp_path, rng):
    weight = rng.standard_normal((16, 1280)).astype(np.float32) / 30
    bias = rng.standard_normal(16).astype(np.float32) / 10
    write_linear_head(tmp_path / "mine", weight, bias)
    emb = likeness.Embedder(["cnn", f"cnn+head:{tmp_path / 'mine'}"], model_dir=model_dir)
    assert emb.features == ["cnn", "cnn-head.mine"]
    assert emb.dims["cnn-head.mine"] == 16 and emb.metrics["cnn-head.mine"] == "cosine"
    out = emb.embed(str(data_dir / "photos" / "coffee.png"))
    y = weight @ out["cnn"] + bias
    np.testing.assert_allclose(out["cnn-head.mine"], y / np.linalg.norm(y), atol=1e-4)
