"""Collection: insert / upsert / delete / get / count / iteration / set_index / compact, and the
dtype and shape errors."""

import numpy as np
import pytest

import likeness
from likeness import VectorField


@pytest.fixture
def db(tmp_path):
    with likeness.Database(tmp_path / "db") as d:
        yield d


@pytest.fixture
def coll(db):
    return db.create_collection("items", [VectorField("emb", 4, "l2"), VectorField("bits", 16, "hamming")])


def vecs(n, rng, dim=4):
    return rng.standard_normal((n, dim)).astype(np.float32)


def bits(n, rng):
    return rng.integers(0, 256, (n, 2), dtype=np.uint8)


def test_insert_get_count_iterate(coll, rng):
    v, b = vecs(5, rng), bits(5, rng)
    meta = [{"label": "cat" if i % 2 else "dog", "width": 100 * i, "tags": ["x", str(i)]} for i in range(5)]
    coll.insert(np.arange(10, 15, dtype=np.uint64), {"emb": v, "bits": b}, meta)
    assert coll.count() == len(coll) == 5
    assert 12 in coll and 99 not in coll and "x" not in coll
    rec = coll.get(12)
    assert rec.id == 12
    assert rec.vectors["emb"].dtype == np.float32 and rec.vectors["bits"].dtype == np.uint8
    np.testing.assert_array_equal(rec.vectors["emb"], v[2])
    np.testing.assert_array_equal(rec.vectors["bits"], b[2])
    assert rec.metadata == meta[2]
    assert coll.get(99) is None and coll.get(99, "none") == "none"
    assert coll[13].metadata["label"] == "cat"
    with pytest.raises(likeness.NotFoundError):
        coll[99]
    assert [r.id for r in coll] == [10, 11, 12, 13, 14]
    np.testing.assert_array_equal(coll.ids(), np.arange(10, 15, dtype=np.uint64))
    assert coll.ids().dtype == np.uint64


def test_single_record_and_list_ids(coll, rng):
    coll.insert(7, {"emb": vecs(1, rng)[0], "bits": bits(1, rng)[0]}, {"label": "one"})
    coll.insert([8, 9], {"emb": vecs(2, rng), "bits": bits(2, rng)})
    assert coll.get(7).metadata == {"label": "one"}
    assert coll.get(8).metadata == {}


def test_strided_input_is_copied_correctly(coll, rng):
    big = vecs(6, rng, dim=8)
    strided = big[::2, ::2]  # not C-contiguous
    assert not strided.flags["C_CONTIGUOUS"]
    coll.insert([1, 2, 3], {"emb": strided, "bits": bits(3, rng)})
    np.testing.assert_array_equal(coll.get(2).vectors["emb"], strided[1])


def test_upsert_replaces_and_delete(coll, rng):
    coll.insert([1, 2], {"emb": vecs(2, rng), "bits": bits(2, rng)}, [{"v": 1}, {"v": 1}])
    new = vecs(2, rng)
    coll.upsert([2, 3], {"emb": new, "bits": bits(2, rng)}, [{"v": 2}, {"v": 2}])
    assert coll.count() == 3
    assert coll.get(2).metadata == {"v": 2}
    np.testing.assert_array_equal(coll.get(2).vectors["emb"], new[0])
    assert coll.delete([1, 3, 99]) == 2
    assert coll.delete(2) == 1
    assert coll.count() == 0


def test_duplicate_insert_writes_nothing(coll, rng):
    coll.insert([1], {"emb": vecs(1, rng), "bits": bits(1, rng)})
    with pytest.raises(likeness.InvalidArgumentError, match="duplicate id 1"):
        coll.insert([2, 1], {"emb": vecs(2, rng), "bits": bits(2, rng)})
    assert coll.count() == 1


def test_dtype_errors_name_the_expected_dtype_and_shape(coll, rng):
    with pytest.raises(TypeError, match=r"float32 array of shape \(n, 4\).*got dtype float64"):
        coll.insert([1], {"emb": np.zeros((1, 4)), "bits": bits(1, rng)})
    with pytest.raises(TypeError, match=r"uint8 array of packed bits of shape \(n, 2\).*got dtype int64"):
        coll.insert([1], {"emb": vecs(1, rng), "bits": np.zeros((1, 2), dtype=np.int64)})
    with pytest.raises(TypeError, match="numpy float32 array.*got list"):
        coll.insert([1], {"emb": [[0.0, 1.0, 2.0, 3.0]], "bits": bits(1, rng)})
    with pytest.raises(TypeError, match="ids must be"):
        coll.insert("abc", {"emb": vecs(1, rng), "bits": bits(1, rng)})
    with pytest.raises(TypeError, match="metadata"):
        coll.insert([1], {"emb": vecs(1, rng), "bits": bits(1, rng)}, ["not a dict"])
    assert coll.count() == 0


def test_shape_errors(coll, rng):
    with pytest.raises(likeness.DimensionError, match=r"shape \(n, 4\).*got shape \[2, 5\]"):
        coll.insert([1, 2], {"emb": vecs(2, rng, dim=5), "bits": bits(2, rng)})
    with pytest.raises(ValueError, match="3 ids but 2 rows"):
        coll.insert([1, 2, 3], {"emb": vecs(2, rng), "bits": bits(2, rng)})
    with pytest.raises(likeness.InvalidArgumentError, match="no array for field 'bits'"):
        coll.insert([1], {"emb": vecs(1, rng)})
    with pytest.raises(likeness.NotFoundError, match="no vector field 'nope'"):
        coll.insert([1], {"emb": vecs(1, rng), "bits": bits(1, rng), "nope": vecs(1, rng)})
    with pytest.raises(likeness.InvalidArgumentError, match="2 ids but 1 metadata"):
        coll.insert([1, 2], {"emb": vecs(2, rng), "bits": bits(2, rng)}, [{}])
    with pytest.raises(likeness.InvalidArgumentError, match="ids are unsigned"):
        coll.insert(np.array([-1]), {"emb": vecs(1, rng), "bits": bits(1, rng)})
    assert coll.count() == 0


def test_nan_is_rejected(coll, rng):
    v = vecs(1, rng)
    v[0, 2] = np.nan
    with pytest.raises(likeness.InvalidArgumentError, match="not finite"):
        coll.insert([1], {"emb": v, "bits": bits(1, rng)})


def test_set_index_compact_stats_persist(tmp_path, rng):
    path = tmp_path / "db"
    data = vecs(500, rng, dim=16)
    with likeness.Database(path) as db:
        c = db.create_collection("c", [VectorField("emb", 16, "l2")])
        c.insert(np.arange(500), {"emb": data})
        c.checkpoint()  # the records move into a segment; deleting them leaves dead rows there
        assert c.delete(list(range(100))) == 100
        c.set_index("emb", "HNSW16,SQ8")
        assert c.schema[0].index == "HNSW16,SQ8"
        c.checkpoint()
        before = c.stats()
        assert before["count"] == 400 and before["deleted"] == 100
        c.compact()
        after = c.stats()
        assert after["deleted"] == 0 and after["segments"] == 1
        assert after["fields"][0]["index"].startswith("HNSW16")
        with pytest.raises(likeness.InvalidArgumentError):
            c.set_index("emb", "NoSuchIndex")
        with pytest.raises(likeness.NotFoundError):
            c.set_index("nope", "Flat")
    with likeness.Database(path) as db:
        c = db["c"]
        assert c.count() == 400 and c.schema[0].index == "HNSW16,SQ8"
        np.testing.assert_array_equal(c.get(250).vectors["emb"], data[250])


def test_auto_index_is_the_default_and_builds_its_graph_in_the_background(tmp_path, rng):
    path = tmp_path / "db"
    data = vecs(600, rng, dim=8)
    with likeness.Database(path) as db:
        c = db.create_collection("c", [VectorField("emb", 8, "l2", "Auto,threshold=300")])
        c.insert(np.arange(200), {"emb": data[:200]})
        field = c.stats()["fields"][0]
        assert field["index"] == "Flat" and "below the graph threshold of 300" in field["policy"]
        c.insert(np.arange(200, 600), {"emb": data[200:]})
        c.wait_for_index()
        field = c.stats()["fields"][0]
        assert field["index"] == "HNSW32" and "chosen by the Auto policy" in field["policy"]
        assert "build" not in field
        hits = c.search(data[123], k=1)
        assert hits.ids[0] == 123
        with pytest.raises(likeness.InvalidArgumentError, match="budget"):
            db.create_collection("d", [VectorField("emb", 8, "l2", "Auto,budget=lots")])
        assert db.create_collection("e", [("emb", 8, "l2")]).schema[0].index == "Auto"
    with likeness.Database(path) as db:
        assert db["c"].stats()["fields"][0]["origin"]["kind"] == "snapshot"
