"""index_folder, search_images and dedup: the CLI's commands from Python, with the CLI's results
on the same database."""

import _thread
import json
import shutil
import threading
import time

import numpy as np
import pytest

import likeness

PIL = pytest.importorskip("PIL.Image")


def _same_results(py, cli_rows):
    """search_images results equal `likeness search --json` (f32 distances printed by serde; ids
    are strings in JSON, ints in Python)."""
    assert all(isinstance(r["id"], str) for r in cli_rows)
    assert [r["id"] for r in py] == [int(r["id"]) for r in cli_rows]
    assert [(r["path"], r["label"]) for r in py] == [(r["path"], r["label"]) for r in cli_rows]
    np.testing.assert_allclose([r["distance"] for r in py], [r["distance"] for r in cli_rows], rtol=1e-6, atol=1e-7)


def _ids_as_ints(report):
    """A dedup report from the CLI's JSON with its string ids as ints (what Python returns)."""
    return {**report, "groups": [{**g, "ids": [int(i) for i in g["ids"]]} for g in report["groups"]]}


def test_index_folder_then_search_images_same_as_cli(cli, tmp_path, photos):
    folder = photos[0].parent
    py_db, cli_db = tmp_path / "py.db", tmp_path / "cli.db"
    seen = []
    report = likeness.index_folder(folder, py_db, features=["color", "phash"], index="HNSW16",
                                   progress=lambda done, total: seen.append((done, total)))
    n = report["found"]
    assert n >= len(photos) + 12  # the photos and the `mate` sub-folder
    assert (report["added"], report["updated"], report["unchanged"], report["failed"]) == (n, 0, 0, [])
    assert not report["interrupted"] and report["images_per_second"] > 0
    assert seen[-1] == (n, n) and seen[0][0] == 0
    cli_report = json.loads(cli("index", folder, "--db", cli_db, "--features", "color,phash", "--index", "HNSW16",
                                "--json"))
    assert {k: cli_report[k] for k in ("found", "added", "failed")} == {k: report[k] for k in ("found", "added", "failed")}

    # Incremental: nothing changed, nothing embedded.
    again = likeness.index_folder(str(folder), py_db)
    assert (again["added"], again["unchanged"]) == (0, n)

    # Same records (ids, vectors, metadata) whichever indexed them.
    with likeness.Database(py_db, read_only=True) as a, likeness.Database(cli_db, read_only=True) as b:
        ra = {r.id: r for r in a["images"]}
        rb = {r.id: r for r in b["images"]}
        assert ra.keys() == rb.keys()
        for i, r in ra.items():
            assert r.metadata == rb[i].metadata
            np.testing.assert_array_equal(r.vectors["color"], rb[i].vectors["color"])
        labels = {r.metadata.get("label") for r in ra.values()}
        assert "mate" in labels

    queries = [photos[3], photos[7], folder / "mate" / "Storm.jpg"]
    for db in (py_db, cli_db):
        out = json.loads(cli("search", *queries, "--db", db, "--feature", "color", "-k", 6, "--json"))
        py = likeness.search_images(db, queries, feature="color", k=6)
        assert isinstance(py, list) and len(py) == 3
        # exactly what json.loads makes of the CLI's output, with the ids (strings in JSON) as ints
        assert py == [{**q, "results": [{**r, "id": int(r["id"])} for r in q["results"]]} for q in out]
        for p, c in zip(py, out):
            assert (p["query"], p["feature"]) == (c["query"], c["feature"])
            _same_results(p["results"], c["results"])
        assert py[0]["results"][0]["path"] == str(queries[0]) and py[0]["results"][0]["distance"] == pytest.approx(0, abs=1e-6)

    # One query gives one dict; filters, thresholds and the default feature as in the CLI.
    one = likeness.search_images(py_db, str(photos[3]), k=4, filter="label=mate", feature="phash")
    out = json.loads(cli("search", photos[3], "--db", py_db, "-k", 4, "--filter", "label=mate", "--feature", "phash",
                         "--json"))
    assert one["feature"] == "phash" and len(one["results"]) == 4
    assert all(r["label"] == "mate" for r in one["results"])
    _same_results(one["results"], out[0]["results"])
    ranged = likeness.search_images(py_db, [photos[3]], threshold=0.5, feature="color")
    out = json.loads(cli("search", photos[3], "--db", py_db, "--threshold", 0.5, "--feature", "color", "--json"))
    _same_results(ranged[0]["results"], out[0]["results"])
    # "More like this" by stored id; the record itself is excluded.
    first = one["results"][0]["id"]
    by_id = likeness.search_images(py_db, ids=first, k=3, feature="phash")
    out = json.loads(cli("search", "--id", first, "--db", py_db, "-k", 3, "--feature", "phash", "--json"))
    assert by_id["query"] == f"id {first}" and first not in [r["id"] for r in by_id["results"]]
    _same_results(by_id["results"], out[0]["results"])

    # An open Database works too (the same results), read-write or read-only.
    with likeness.Database(py_db) as db:
        via_obj = likeness.search_images(db, queries, feature="color", k=6)
    assert via_obj == likeness.search_images(py_db, queries, feature="color", k=6)


def test_bad_images_in_a_folder_are_reported_and_skipped(cli, tmp_path, photos):
    folder = tmp_path / "pics"
    folder.mkdir()
    for p in photos[:4]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    # Into an open Database (the lock is this process's).
    with likeness.Database(tmp_path / "db") as db:
        report = likeness.index_folder(folder, db, features="color,phash", batch=2)
        assert report["found"] == 6 and report["added"] == 4
        failed = {f["path"]: f["reason"] for f in report["failed"]}
        assert set(failed) == {str(folder.resolve() / "broken.jpg"), str(folder.resolve() / "empty.png")}
        assert "decode" in failed[str(folder.resolve() / "broken.jpg")]
        assert "empty" in failed[str(folder.resolve() / "empty.png")]
        assert db["images"].count() == 4
        assert set(db["images"].fields) == {"color", "phash"}
    cli_report = json.loads(cli("index", folder, "--db", tmp_path / "cli.db", "--features", "color,phash", "--json"))
    assert cli_report["failed"] == report["failed"]
    # A bad query image is an ImageError, as the CLI fails on it.
    with pytest.raises(likeness.ImageError, match="broken.jpg"):
        likeness.search_images(tmp_path / "db", [photos[0], folder / "broken.jpg"])


def _edited_copies(photos, folder):
    """Originals plus re-encoded / resized copies of some: the near duplicates dedup must find."""
    folder.mkdir()
    for p in photos[:8]:
        shutil.copy(p, folder / p.name)
    for p in photos[:3]:
        img = PIL.open(p).convert("RGB")
        img.save(folder / f"{p.stem}-q30.jpg", quality=30)
        img.resize((img.width // 2, img.height // 2)).save(folder / f"{p.stem}-half.png")


def test_dedup_same_as_cli(cli, tmp_path, photos):
    folder = tmp_path / "pics"
    _edited_copies(photos, folder)
    db_path = tmp_path / "db"
    likeness.index_folder(folder, db_path, features=["phash", "color"])
    calls = []
    py = likeness.dedup(db_path, progress=lambda done, total: calls.append((done, total)))
    out = json.loads(cli("dedup", "--db", db_path, "--json"))
    assert all(isinstance(i, str) for g in out["groups"] for i in g["ids"])
    assert py == _ids_as_ints(out)
    assert py["feature"] == "phash" and py["threshold"] == 12.0 and py["records"] == 14
    assert [(g["ids"], g["paths"]) for g in py["groups"]] == [([int(i) for i in g["ids"]], g["paths"]) for g in out["groups"]]
    assert [g["max_distance"] for g in py["groups"]] == pytest.approx([g["max_distance"] for g in out["groups"]])
    stems = sorted(sorted({pathlib_stem(p) for p in g["paths"]}) for g in py["groups"])
    assert len(py["groups"]) == 3 and all(len(g["ids"]) == 3 for g in py["groups"])
    assert stems == sorted([[p.stem] for p in photos[:3]])
    assert calls[-1] == (14, 14)
    # Another feature and threshold, through an open Database.
    with likeness.Database(db_path, read_only=True) as db:
        strict = likeness.dedup(db, feature="phash", threshold=0)
    out = json.loads(cli("dedup", "--db", db_path, "--feature", "phash", "--threshold", 0, "--json"))
    assert [g["ids"] for g in strict["groups"]] == [[int(i) for i in g["ids"]] for g in out["groups"]]
    with pytest.raises(likeness.InvalidArgumentError, match="no calibrated default threshold"):
        likeness.dedup(db_path, feature="color")


def pathlib_stem(path):
    """The original photo's stem of a path (`chelsea-q30.jpg` -> `chelsea`)."""
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return name.removesuffix("-q30").removesuffix("-half")


def test_errors(tmp_path, photos):
    db_path = tmp_path / "db"
    with pytest.raises(likeness.NotFoundError, match="nowhere"):
        likeness.index_folder(tmp_path / "nowhere", db_path)
    assert not db_path.exists(), "a missing folder must not create the database"
    likeness.index_folder(photos[0].parent, db_path, features=["color"])
    with pytest.raises(likeness.NotFoundError, match="no collection 'other'"):
        likeness.search_images(db_path, photos[0], collection="other")
    with pytest.raises(likeness.NotFoundError, match="no feature 'cnn'"):
        likeness.search_images(db_path, photos[0], feature="cnn")
    with pytest.raises(likeness.NotFoundError, match="no collection"):
        likeness.dedup(db_path, collection="other")
    with pytest.raises(likeness.FilterError, match="needs a number"):
        likeness.search_images(db_path, photos[0], filter="width>=abc")
    with pytest.raises(likeness.ImageError, match="missing.png"):
        likeness.search_images(db_path, tmp_path / "missing.png")
    with pytest.raises(likeness.InvalidArgumentError, match="k must be"):
        likeness.search_images(db_path, photos[0], k=0)
    with pytest.raises(likeness.Error, match="created with features color"):
        likeness.index_folder(photos[0].parent, db_path, features=["phash"])
    with pytest.raises(TypeError, match="images or ids"):
        likeness.search_images(db_path)
    with pytest.raises(TypeError, match="likeness.Database or a directory"):
        likeness.search_images(42, photos[0])
    with pytest.raises(TypeError, match="paths"):
        likeness.search_images(db_path, [photos[0], 3])
    with pytest.raises(likeness.LockedError):
        with likeness.Database(db_path):
            likeness.index_folder(photos[0].parent, db_path)


def _many_images(photos, folder, copies):
    folder.mkdir()
    for c in range(copies):
        sub = folder / f"set{c}"
        sub.mkdir()
        for p in photos:
            shutil.copy(p, sub / p.name)


def test_python_thread_runs_during_index_folder(tmp_path, photos):
    folder = tmp_path / "pics"
    _many_images(photos, folder, 4)
    ticks = 0
    stop = threading.Event()

    def counter():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=counter)
    t.start()
    time.sleep(0.05)
    start_ticks = ticks
    started = time.perf_counter()
    report = likeness.index_folder(folder, tmp_path / "db", features=["color", "texture", "phash"])
    elapsed = time.perf_counter() - started
    during = ticks - start_ticks
    stop.set()
    t.join()
    assert report["added"] == 4 * len(photos) and report["failed"] == []
    # With the GIL held for the whole run the counter could only run in the short switches
    # between batches; released, it runs the whole time.
    assert elapsed > 0.2, f"indexing too quick to tell ({elapsed:.3f} s)"
    assert during > 10_000 and during / elapsed > 100_000, (during, elapsed)


def test_interrupt_and_progress_errors_stop_between_batches_and_resume(tmp_path, photos):
    folder = tmp_path / "pics"
    _many_images(photos, folder, 2)
    total = 2 * len(photos)
    db_path = tmp_path / "db"

    def ctrl_c(done, _total):
        if done >= 4:
            _thread.interrupt_main()  # what Ctrl-C does: SIGINT's flag, seen between batches

    with pytest.raises(KeyboardInterrupt):
        likeness.index_folder(folder, db_path, features=["color"], batch=4, progress=ctrl_c)
    with likeness.Database(db_path, read_only=True) as db:
        kept = db["images"].count()
    assert 4 <= kept < total and kept % 4 == 0, kept

    def fail(done, _total):
        if done >= 4:
            raise RuntimeError("stop here")

    # An exception from the callback stops the run the same way: what was embedded before it (at
    # least the batch in flight; the pipeline embeds up to one hand-off of images ahead) is
    # stored, nothing is lost, and the next run adds only the rest.
    with pytest.raises(RuntimeError, match="stop here"):
        likeness.index_folder(folder, db_path, batch=4, progress=fail)
    with likeness.Database(db_path, read_only=True) as db:
        stored = db["images"].count()
    assert kept + 4 <= stored < total, (kept, stored, total)
    report = likeness.index_folder(folder, db_path)
    assert (report["unchanged"], report["added"]) == (stored, total - stored)


def test_embed_in_memory_cnn_batch_matches_files(model_dir, photos):
    # Bytes, arrays and PIL images go through the CNN in batches, like files: same vectors.
    emb = likeness.Embedder(["cnn", "phash"], model_dir=model_dir)
    files = photos[:6]
    items = []
    for i, p in enumerate(files):
        kind = i % 3
        if kind == 0:
            items.append(p.read_bytes())
        elif kind == 1:
            items.append(np.asarray(PIL.open(p).convert("RGB")))
        else:
            items.append(PIL.open(p))
    items.insert(3, b"not an image")
    batch = emb.embed(items)
    assert [i for i, _ in batch.errors] == [3] and "<bytes item 3>" in batch.errors[0][1]
    by_path = emb.embed([str(p) for p in files])
    rows = [i for i in range(len(items)) if i != 3]
    cos = np.sum(batch["cnn"][rows] * by_path["cnn"], axis=1)
    assert np.all(cos > 1 - 1e-5), cos
    np.testing.assert_array_equal(batch["phash"][rows], by_path["phash"])
