"""A local multi-node Ray cluster for the likeness.ray tests (run by scripts/ray-tests.sh).

The cluster: a head and two worker nodes started with ``ray start`` on this machine, one CPU
each (``LIKENESS_RAY_NODES=0`` uses ``ray.init()`` instead). Everything runs under a time
bound and ``ray stop --force`` ends the cluster's processes in the finalizer.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Iterator, List

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
RAY = str(pathlib.Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str) -> None:
    if os.environ.get("LIKENESS_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is missing (LIKENESS_REQUIRE_ALL=1)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("LIKENESS_TEST_DATA") or REPO / "data")
    if not (d / "photos" / "chelsea.png").exists():
        _missing(f"test data in {d} (run scripts/fetch-test-data.sh)")
    return d


@pytest.fixture(scope="session")
def image_dir(data_dir: pathlib.Path) -> Iterator[pathlib.Path]:
    """About 120 real images: the sample photos and 100 rendered Fashion-MNIST items, in
    labelled folders."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="ray-likeness-img-"))
    shutil.copytree(data_dir / "photos", d / "photos")
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "render_fashion_mnist.py"), str(d / "fashion"), "--split", "t10k",
         "--limit", "100", "--src", str(data_dir / "fashion-mnist")],
        check=True, capture_output=True, timeout=120,
    )
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _run(args: List[str], env: dict) -> None:
    done = subprocess.run([RAY, *args], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict]:
    """A running cluster, connected (``ray.init(address=...)``); ``info["nodes"]`` is the number
    of nodes and ``info["multi_node"]`` says whether ``ray start`` made it (then
    ``info["address"]`` is the head's and ``info["add_worker_node"]()`` starts one more worker node)."""
    import ray

    # A throwaway cluster on this machine: no token authentication (Ray 2.60 turns it on for a
    # local cluster when ~/.ray/auth_token exists, and the worker nodes then fail to join).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # A dead node is declared dead after ~3 s instead of ~15-30 s (the node-kill test).
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_health_check_period_ms="1000",
               RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="3")
    info = {"multi_node": os.environ.get("LIKENESS_RAY_NODES", "1") != "0"}
    temp = tempfile.mkdtemp(prefix="ray-lk-")
    started = False
    try:
        if info["multi_node"]:
            port = _free_port()
            common = ["--num-cpus", "1", "--object-store-memory", str(150 * 1024**2), "--disable-usage-stats"]
            _run(["start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp,
                  "--node-ip-address", "127.0.0.1", *common], env)
            started = True
            worker = ["start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", *common]
            for _ in range(2):
                _run(worker, env)
            info["address"] = f"127.0.0.1:{port}"
            info["add_worker_node"] = lambda: _run(worker, env)
            ray.init(address=f"127.0.0.1:{port}", logging_level="warning")
        else:
            ray.init(num_cpus=3, object_store_memory=300 * 1024**2, include_dashboard=False, logging_level="warning", _temp_dir=temp)
        info["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        yield info
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
        if started:
            subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=60, env=env)
        shutil.rmtree(temp, ignore_errors=True)
