"""The CLI and Python share databases: one opens what the other made, and both give the same
results on the same database."""

import json

import numpy as np
import pytest

import likeness
from likeness import VectorField


def test_python_db_searched_by_the_cli(cli, tmp_path, rng):
    data = rng.standard_normal((400, 24)).astype(np.float32)
    queries = rng.standard_normal((6, 24)).astype(np.float32)
    db_path = tmp_path / "db"
    with likeness.Database(db_path) as db:
        c = db.create_collection("vecs", [VectorField("vector", 24, "l2", "HNSW16")])
        c.insert(np.arange(400), {"vector": data})
        py = c.search(queries, k=5, ef=80)
    np.save(tmp_path / "q.npy", queries)
    out = json.loads(cli("vectors", "search", tmp_path / "q.npy", "--db", db_path, "--collection", "vecs",
                         "-k", 5, "--ef", 80, "--json"))
    cli_ids = np.array([[hit[0] for hit in row] for row in out["results"]], dtype=np.uint64)
    cli_d = np.array([[hit[1] for hit in row] for row in out["results"]], dtype=np.float32)
    np.testing.assert_array_equal(cli_ids, py.ids)
    np.testing.assert_array_equal(cli_d, py.distances)
    info = cli("db", "info", db_path)
    assert "vecs" in info


def test_cli_db_opened_by_python(cli, tmp_path, rng):
    data = rng.standard_normal((300, 10)).astype(np.float32)
    np.save(tmp_path / "base.npy", data)
    db_path = tmp_path / "db"
    cli("vectors", "import", tmp_path / "base.npy", "--db", db_path, "--collection", "imp",
        "--metric", "cosine", "--index", "HNSW16", "--start-id", 1000)
    np.save(tmp_path / "q.npy", data[:4])
    out = json.loads(cli("vectors", "search", tmp_path / "q.npy", "--db", db_path, "--collection", "imp",
                         "-k", 3, "--json"))
    with likeness.Database(db_path) as db:
        c = db["imp"]
        assert c.count() == 300
        assert c.schema == [VectorField("vector", 10, "cosine", "HNSW16")]
        rec = c.get(1005)
        np.testing.assert_allclose(rec.vectors["vector"], data[5] / np.linalg.norm(data[5]), rtol=1e-6)
        py = c.search(data[:4], k=3)
        # Python writes into the CLI's database, and the CLI sees it
        c.insert([5000], {"vector": data[:1]}, [{"path": "/x.png"}])
    assert [[h[0] for h in row] for row in out["results"]] == py.ids.tolist()
    assert py.ids[:, 0].tolist() == [1000, 1001, 1002, 1003]
    export = json.loads(cli("vectors", "export", "--db", db_path, "--collection", "imp",
                            "--out", tmp_path / "all.npy", "--json"))
    assert export["rows"] == 301


def test_image_search_same_as_cli(cli, tmp_path, photos):
    db_path = tmp_path / "db"
    folder = photos[0].parent
    cli("index", folder, "--db", db_path, "--features", "color,phash")
    query = photos[3]
    out = json.loads(cli("search", query, "--db", db_path, "--feature", "color", "-k", 6, "--json"))
    cli_rows = out[0]["results"]
    emb = likeness.Embedder(["color", "phash"])
    with likeness.Database(db_path) as db:
        c = db["images"]
        assert c.count() >= len(photos)
        assert set(c.fields) == {"color", "phash"}
        res = c.search(emb.embed(str(query))["color"], k=6, field="color", include_metadata=True)
        # the stored vectors are the ones the embedder computes for the same file
        stored = [r for r in c if r.metadata["path"] == str(query)][0]
        np.testing.assert_array_equal(stored.vectors["color"], emb.embed(str(query))["color"])
        np.testing.assert_array_equal(stored.vectors["phash"], emb.embed(str(query))["phash"])
    assert res.ids.tolist() == [int(r["id"]) for r in cli_rows]
    np.testing.assert_allclose(res.distances, [r["distance"] for r in cli_rows], rtol=1e-6)
    assert [m["path"] for m in res.metadata] == [r["path"] for r in cli_rows]
    assert res.metadata[0]["path"] == str(query) and res.distances[0] == pytest.approx(0, abs=1e-6)


def test_cnn_image_search_same_as_cli(cli, tmp_path, photos, model_dir):
    db_path = tmp_path / "db"
    cli("index", photos[0].parent, "--db", db_path, "--features", "cnn", env={"LIKENESS_MODEL_DIR": str(model_dir)})
    queries = [photos[1], photos[4]]
    out = json.loads(cli("search", *queries, "--db", db_path, "-k", 5, "--json",
                         env={"LIKENESS_MODEL_DIR": str(model_dir)}))
    emb = likeness.Embedder(["cnn"], model_dir=model_dir)
    vectors = emb.embed([str(q) for q in queries])
    with likeness.Database(db_path) as db:
        res = db["images"].search(vectors["cnn"], k=5, field="cnn")
    for i, row in enumerate(out):
        assert res.ids[i].tolist() == [int(r["id"]) for r in row["results"]]
        np.testing.assert_allclose(res.distances[i], [r["distance"] for r in row["results"]], atol=1e-5)
