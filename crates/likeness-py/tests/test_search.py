"""Collection.search: one vector, batches, ids, range search, filters, knobs, results layout."""

import numpy as np
import pytest

import likeness
from likeness import VectorField

N, DIM = 300, 8


@pytest.fixture
def data(rng):
    return rng.standard_normal((N, DIM)).astype(np.float32)


@pytest.fixture
def coll(tmp_path, data):
    with likeness.Database(tmp_path / "db") as db:
        c = db.create_collection("c", [VectorField("emb", DIM, "l2"), VectorField("cos", DIM, "cosine")])
        meta = [{"label": ["cat", "dog", "fox"][i % 3], "width": i} for i in range(N)]
        c.insert(np.arange(N, dtype=np.uint64), {"emb": data, "cos": data}, meta)
        yield c


def brute_l2(data, q, k):
    d = np.sqrt(((data - q) ** 2).sum(axis=1))
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


def test_single_query_matches_brute_force(coll, data, rng):
    q = rng.standard_normal(DIM).astype(np.float32)
    res = coll.search(q, k=5)
    assert not res.batch and res.field == "emb" and res.metric == "l2"
    assert res.ids.shape == (5,) and res.ids.dtype == np.uint64
    assert res.distances.dtype == np.float32
    ids, dists = brute_l2(data, q, 5)
    np.testing.assert_array_equal(res.ids, ids)
    np.testing.assert_allclose(res.distances, dists, rtol=1e-5)
    assert res.valid.all() and list(res.counts) == [5]
    assert res.metadata is None


def test_default_k_is_10_and_cosine_field(coll, data):
    res = coll.search(data[3], field="cos")
    assert len(res.ids) == 10 and res.ids[0] == 3
    assert res.metric == "cosine" and abs(res.distances[0]) < 1e-5


def test_batch_results_are_n_by_k(coll, data, rng):
    qs = rng.standard_normal((20, DIM)).astype(np.float32)
    res = coll.search(qs, k=7)
    assert res.batch and len(res) == 20
    assert res.ids.shape == (20, 7) and res.distances.shape == (20, 7)
    for i in range(20):
        ids, _ = brute_l2(data, qs[i], 7)
        np.testing.assert_array_equal(res.ids[i], ids)
    single = coll.search(qs[4], k=7)
    np.testing.assert_array_equal(single.ids, res.ids[4])
    np.testing.assert_array_equal(single.distances, res.distances[4])
    # a 2-D batch of one row stays 2-D
    assert coll.search(qs[:1], k=3).ids.shape == (1, 3)


def test_batch_padding_and_mask(coll, data):
    # only 100 records have label cat: k=150 pads the rest
    res = coll.search(data[:3], k=150, filter="label=cat")
    assert res.ids.shape == (3, 150)
    assert list(res.counts) == [100, 100, 100]
    assert res.valid[:, :100].all() and not res.valid[:, 100:].any()
    assert (res.ids[:, 100:] == likeness.NO_ID).all() and likeness.NO_ID == 2**64 - 1
    assert np.isinf(res.distances[:, 100:]).all()
    assert (res.ids[res.valid] % 3 == 0).all()


def test_search_by_id_excludes_the_record(coll, data):
    res = coll.search(17, k=4)
    assert 17 not in res.ids and len(res.ids) == 4
    ids, _ = brute_l2(data, data[17], 5)
    np.testing.assert_array_equal(res.ids, ids[1:])
    batch = coll.search([17, 18], k=4)
    assert batch.ids.shape == (2, 4)
    np.testing.assert_array_equal(batch.ids[0], res.ids)
    by_array = coll.search(np.array([17, 18], dtype=np.uint64), k=4)
    np.testing.assert_array_equal(by_array.ids, batch.ids)
    with pytest.raises(likeness.NotFoundError, match="no record with id 12345"):
        coll.search(12345)


def test_range_search(coll, data):
    q = data[0]
    d = np.sqrt(((data - q) ** 2).sum(axis=1))
    ds = np.sort(d)
    t = float((ds[12] + ds[13]) / 2)  # between two distances: no rounding question at the edge
    res = coll.search(q, threshold=t)
    assert set(res.ids.tolist()) == set(np.nonzero(d <= t)[0].tolist())
    assert (res.distances <= t).all()
    limited = coll.search(q, k=3, threshold=t)
    assert len(limited.ids) == 3
    batch = coll.search(data[:2], threshold=t)
    assert batch.ids.shape[1] == batch.counts.max()


def test_filters_string_and_dict(coll, data):
    res = coll.search(data[0], k=20, filter="label=dog and width>=150", include_metadata=True)
    assert len(res.metadata) == len(res.ids) == 20
    assert all(m["label"] == "dog" and m["width"] >= 150 for m in res.metadata)
    res2 = coll.search(data[0], k=20, filter={"label": "dog", "width": {"gte": 150}})
    np.testing.assert_array_equal(res.ids, res2.ids)
    res3 = coll.search(data[0], k=5, filter={"label": {"in": ["cat", "fox"]}})
    assert all(i % 3 != 1 for i in res3.ids)
    with pytest.raises(likeness.FilterError, match="invalid filter"):
        coll.search(data[0], filter="label")
    with pytest.raises(likeness.FilterError, match="invalid filter"):
        coll.search(data[0], filter={"width": {"between": [1, 2]}})
    with pytest.raises(TypeError, match="filter must be"):
        coll.search(data[0], filter=42)


def test_batch_metadata_and_to_list(coll, data):
    res = coll.search(data[:2], k=2, include_metadata=True)
    assert len(res.metadata) == 2 and len(res.metadata[0]) == 2
    assert res.metadata[0][0] == {"label": "cat", "width": 0}
    rows = res.to_list()
    assert rows[0][0] == {"id": 0, "distance": pytest.approx(0.0, abs=1e-5), "metadata": {"label": "cat", "width": 0}}
    one = coll.search(data[5], k=1).to_list()
    assert one == [{"id": 5, "distance": pytest.approx(0.0, abs=1e-5)}]


def test_hnsw_knobs(tmp_path, rng):
    data = rng.standard_normal((2000, 16)).astype(np.float32)
    with likeness.Database(tmp_path / "db") as db:
        c = db.create_collection("c", [VectorField("emb", 16, "l2", "HNSW16")])
        c.insert(np.arange(2000), {"emb": data})
        qs = data[:50] + 0.01
        res = c.search(qs, k=10, ef=200)
        exact = [brute_l2(data, q, 10)[0] for q in qs]
        recall = np.mean([len(set(r) & set(e)) / 10 for r, e in zip(res.ids.tolist(), exact)])
        assert recall > 0.95


def test_query_errors(coll, data):
    with pytest.raises(TypeError, match=r"float32.*got dtype float64"):
        coll.search(data[0].astype(np.float64))
    with pytest.raises(likeness.DimensionError, match=r"shape \(n, 8\) or \(8,\).*got shape \[5\]"):
        coll.search(data[0][:5])
    with pytest.raises(TypeError, match="list that is not all ints"):
        coll.search([0.1] * DIM)
    with pytest.raises(likeness.NotFoundError, match="no vector field 'x'"):
        coll.search(data[0], field="x")
    with pytest.raises(ValueError, match="k must be at least 1"):
        coll.search(data[0], k=0)


def test_binary_field_search(tmp_path, rng):
    codes = rng.integers(0, 256, (100, 8), dtype=np.uint8)
    with likeness.Database(tmp_path / "db") as db:
        c = db.create_collection("h", [VectorField("phash", 64, "hamming")])
        c.insert(np.arange(100), {"phash": codes})
        q = codes[9].copy()
        q[0] ^= 0b101  # two bits off
        res = c.search(q, k=3)
        assert res.ids[0] == 9 and res.distances[0] == 2.0
        expected = np.unpackbits(codes ^ q, axis=1).sum(axis=1)
        np.testing.assert_array_equal(res.distances, np.sort(expected)[:3])


def test_multi_vector_field_scores_records_by_their_best_pair(tmp_path, rng):
    f = likeness.VectorField("regions", 8, "cosine", "Flat", vectors_per_record=3)
    assert f.vectors_per_record == 3 and "vectors_per_record=3" in repr(f)
    with likeness.Database(tmp_path / "db") as db:
        c = db.create_collection("m", [f])
        assert c.schema[0].vectors_per_record == 3
        data = rng.standard_normal((60, 3, 8)).astype(np.float32)
        c.insert(np.arange(40, dtype=np.uint64), {"regions": data[:40]})
        c.insert(np.arange(40, 60, dtype=np.uint64), {"regions": data[40:].reshape(20, 24)})
        unit = data / np.linalg.norm(data, axis=2, keepdims=True)
        # Two query vectors: record 7's last one exactly, and a noisy copy of record 21's first.
        q = np.stack([unit[7, 2], unit[21, 0] + 0.3 * rng.standard_normal(8).astype(np.float32)])
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        best = 1 - np.einsum("qd,nrd->nqr", qn, unit).reshape(60, -1).max(axis=1)
        order = np.argsort(best, kind="stable")[:5]
        res = c.search(q.reshape(-1), k=5)
        np.testing.assert_array_equal(res.ids, order)
        np.testing.assert_allclose(res.distances, best[order], atol=1e-5)
        assert res.ids[0] == 7 and abs(res.distances[0]) < 1e-5
        # A record's vectors come back side by side.
        np.testing.assert_allclose(c.get(45).vectors["regions"], unit[45].reshape(-1), atol=1e-6)
        # Rows of the wrong shape are refused, naming the shapes the field takes.
        with pytest.raises(Exception, match=r"\(n, 3, 8\)"):
            c.insert(np.array([99], dtype=np.uint64), {"regions": data[:1, :2]})
        with pytest.raises(Exception, match="regions"):
            c.search(np.ones(12, dtype=np.float32))
