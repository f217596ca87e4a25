"""Database: create / open / list / drop collections, schema, locking, closing."""

import subprocess
import sys

import pytest

import likeness
from likeness import VectorField


def test_create_list_drop_reopen(tmp_path):
    path = tmp_path / "db"
    with likeness.Database(path) as db:
        assert db.collection_names() == []
        db.create_collection("b", [VectorField("emb", 8, "cosine", "HNSW16")])
        db.create_collection("a", [("vec", 4, "l2"), ("bits", 64, "hamming", "Flat")])
        assert db.collection_names() == ["a", "b"]
        assert "a" in db and "zzz" not in db and len(db) == 2
        db.drop_collection("b")
        assert db.collection_names() == ["a"]
    assert db.closed
    with likeness.Database(str(path)) as db:
        assert db.collection_names() == ["a"]
        schema = db["a"].schema
        assert schema == [VectorField("vec", 4, "l2", "Auto"), VectorField("bits", 64, "hamming", "Flat")]
        assert [f.dtype for f in schema] == ["float32", "uint8"]
        assert db.collection("a").fields == ["vec", "bits"]


def test_vector_field_checks_metric_and_repr():
    f = VectorField("emb", 128, "COSINE", "HNSW16")
    assert (f.name, f.dim, f.metric, f.index) == ("emb", 128, "cosine", "HNSW16")
    assert repr(f) == "VectorField('emb', 128, 'cosine', 'HNSW16')"
    with pytest.raises(likeness.InvalidArgumentError, match="unknown metric"):
        VectorField("emb", 3, "manhattan")


def test_schema_errors(tmp_path):
    with likeness.Database(tmp_path / "db") as db:
        with pytest.raises(likeness.InvalidArgumentError, match="invalid index spec"):
            db.create_collection("c", [VectorField("emb", 8, "l2", "HNSW")])
        with pytest.raises(likeness.InvalidArgumentError, match="name"):
            db.create_collection("bad name!", [VectorField("emb", 8)])
        with pytest.raises(TypeError, match="VectorField"):
            db.create_collection("c", ["emb"])
        db.create_collection("c", [VectorField("emb", 8)])
        with pytest.raises(likeness.InvalidArgumentError, match="already exists"):
            db.create_collection("c", [VectorField("emb", 8)])
        again = db.create_collection("c", [VectorField("other", 3)], exist_ok=True)
        assert again.fields == ["emb"]
        with pytest.raises(likeness.NotFoundError, match="unknown collection 'nope'"):
            db["nope"]
        with pytest.raises(LookupError):
            db.drop_collection("nope")


def test_locked_by_another_process(tmp_path):
    path = tmp_path / "db"
    with likeness.Database(path):
        code = (
            "import likeness, sys\n"
            f"try:\n    likeness.Database({str(path)!r})\n"
            "except likeness.LockedError as e:\n    print('locked:', e); sys.exit(3)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 3, done.stderr
        assert "locked by another process" in done.stdout
    # released on close: another process can open it now
    done = subprocess.run([sys.executable, "-c", f"import likeness; likeness.Database({str(path)!r})"])
    assert done.returncode == 0


def test_read_only_beside_a_writer(tmp_path):
    import numpy as np

    path = tmp_path / "db"
    with pytest.raises(likeness.Error):
        likeness.Database(path, read_only=True)  # nothing there: a read-only open creates nothing
    with likeness.Database(path) as writer:
        c = writer.create_collection("c", [VectorField("emb", 2)])
        c.insert([1, 2], {"emb": np.eye(2, dtype=np.float32)})
        with likeness.Database(path, read_only=True) as reader:  # no lock taken: opens beside the writer
            assert reader.read_only and not writer.read_only
            r = reader["c"]
            assert r.count() == 2
            with pytest.raises(likeness.Error, match="read-only"):
                r.insert([3], {"emb": np.ones((1, 2), dtype=np.float32)})
            c.insert([3], {"emb": np.ones((1, 2), dtype=np.float32)})
            writer.create_collection("d", [VectorField("emb", 2)])
            assert reader.refresh() >= 1
            assert reader["c"].count() == 3 and reader.collection_names() == ["c", "d"]
            assert r.search(np.ones(2, np.float32), k=1).ids.tolist() == [3]


def test_closed_database_fails_cleanly(tmp_path):
    db = likeness.Database(tmp_path / "db")
    coll = db.create_collection("c", [VectorField("emb", 2)])
    db.close()
    db.close()  # idempotent
    with pytest.raises(likeness.Error, match="closed"):
        db.collection_names()
    with pytest.raises(likeness.Error, match="closed"):
        coll.count()
    assert "closed" in repr(db)


def test_dropped_collection_handle_fails(tmp_path):
    with likeness.Database(tmp_path / "db") as db:
        coll = db.create_collection("c", [VectorField("emb", 2)])
        db.drop_collection("c")
        with pytest.raises(likeness.NotFoundError):
            coll.count()


def test_exception_hierarchy():
    assert issubclass(likeness.LockedError, likeness.Error)
    for cls in (likeness.DimensionError, likeness.FilterError, likeness.InvalidArgumentError):
        assert issubclass(cls, likeness.Error) and issubclass(cls, ValueError)
    assert issubclass(likeness.NotFoundError, LookupError)
    assert issubclass(likeness.ImageError, likeness.Error)
    assert issubclass(likeness.Error, Exception)
