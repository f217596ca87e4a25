"""Shared fixtures: test data, the CNN model, the CLI binary.

Environment (as for the Rust tests): ``LIKENESS_TEST_DATA`` (default ``<repo>/data``, made by
scripts/fetch-test-data.sh), ``LIKENESS_MODEL_DIR`` (default ``<data>/models``) and
``LIKENESS_BIN``, the ``likeness`` CLI (default ``<repo>/target/{debug,release}/likeness``).
Set ``LIKENESS_REQUIRE_ALL=1`` (scripts/test.sh does) to fail instead of skipping when one of
them is missing.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def _missing(what):
    if os.environ.get("LIKENESS_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is missing (LIKENESS_REQUIRE_ALL=1)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def data_dir():
    d = pathlib.Path(os.environ.get("LIKENESS_TEST_DATA") or REPO / "data")
    if not (d / "photos" / "chelsea.png").exists():
        _missing(f"test data in {d} (run scripts/fetch-test-data.sh)")
    return d


@pytest.fixture(scope="session")
def photos(data_dir):
    """Sample photos (PNG and JPEG), sorted."""
    return sorted(p for p in (data_dir / "photos").iterdir() if p.suffix in (".png", ".jpg"))


@pytest.fixture(scope="session")
def model_dir(data_dir):
    d = pathlib.Path(os.environ.get("LIKENESS_MODEL_DIR") or data_dir / "models")
    if not any(d.glob("*.safetensors")):
        _missing(f"the CNN model in {d} (run `likeness model fetch`)")
    return d


@pytest.fixture(scope="session")
def cli():
    """A function running the likeness CLI and returning its stdout."""
    candidates = [os.environ.get("LIKENESS_BIN")] + [str(REPO / "target" / p / "likeness") for p in ("debug", "release")]
    binary = next((c for c in candidates if c and os.path.isfile(c)), None) or shutil.which("likeness")
    if binary is None:
        _missing("the likeness CLI (cargo build -p likeness, or set LIKENESS_BIN)")

    def run(*args, env=None):
        full_env = dict(os.environ, **(env or {}))
        done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"likeness {' '.join(map(str, args))} failed:\n{done.stderr}")
        return done.stdout

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(7)
