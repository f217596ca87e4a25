"""likeness.ray is optional: the core package never imports Ray, and likeness.ray's Ray-free
helpers (record ids, shard routing) work without it."""

import importlib.util
import subprocess
import sys

import pytest

import likeness
from likeness.ray import fnv1a, record_id, shard_of


def test_import_likeness_does_not_import_ray():
    code = "import sys, likeness, likeness.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_record_ids_are_the_clis(photos, tmp_path):
    assert fnv1a(b"") == 0xCBF29CE484222325 and fnv1a(b"a") == 0xAF63DC4C8601EC8C
    db = tmp_path / "db"
    likeness.index_folder(photos[0].parent, db, features=["color"])
    with likeness.Database(db) as d:
        ids = {int(i) for i in d["images"].ids()}
    assert {record_id(p) for p in photos} <= ids


def test_shard_of_is_stable_and_spreads():
    counts = [0, 0, 0]
    for i in range(3000):
        counts[shard_of(record_id(f"/photos/{i}.jpg"), 3)] += 1
    assert min(counts) > 900
    assert shard_of(12345, 4) == shard_of(12345, 4)
    with pytest.raises(ValueError):
        shard_of(1, 0)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_the_ray_parts_name_the_extra_when_ray_is_missing():
    import likeness.ray as lr

    with pytest.raises(ImportError, match=r"likeness\[ray\]"):
        lr.ingest
