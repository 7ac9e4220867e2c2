"""The task engine on Ray: a two-node local cluster (``ray.cluster_utils.Cluster``) shared by the module.

Ray's start-up costs seconds, so one cluster (two nodes of one CPU, small object stores) serves every
test here; the ``--workers`` path (a local instance started by lutgen) is tested with the evaluate command.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import ConfigError
from approxlut.tasks import RayEngine, open_engine

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

STORE = 100 << 20  # per node: the machine is shared


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    cache = tmp_path_factory.mktemp("cache")
    nodes = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1, object_store_memory=STORE)
    nodes.wait_for_nodes()
    env = {"LUTGEN_ENGINE": "reference", "LUTGEN_CACHE": str(cache), "LUTGEN_LIBRARY": os.environ["LUTGEN_LIBRARY"]}
    ray.init(address=nodes.address, runtime_env={"env_vars": env}, logging_level="error", log_to_driver=False)
    # the small tasks below live in this test module, which workers cannot import: ship them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield nodes.address
    finally:
        ray.shutdown()
        nodes.shutdown()


def _where(value: int, pause: float) -> tuple[int, str]:
    time.sleep(pause)
    return value * value, ray.get_runtime_context().get_node_id()


def _die_once(marker: str, value: int) -> int:
    """Kills its own worker process on the first attempt (the marker file counts attempts)."""
    path = Path(marker)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts == 1:
        os._exit(1)
    return value + attempts


def _total(values: np.ndarray) -> int:
    return int(values.sum())


def _refuse(value: int) -> int:
    raise ConfigError(f"bad value {value}")


def test_tasks_run_on_both_nodes_in_order(cluster: str) -> None:
    with open_engine(address=cluster) as engine:
        assert isinstance(engine, RayEngine) and engine.workers == 2
        assert "2 node(s)" in engine.description
        results = engine.map(_where, [(v, 0.5) for v in range(6)])
    assert [r[0] for r in results] == [v * v for v in range(6)]
    assert len({r[1] for r in results}) == 2
    assert ray.is_initialized()  # an engine that joined an existing connection leaves it open


def test_large_values_are_put_once(cluster: str) -> None:
    with open_engine(address=cluster) as engine:
        table = engine.put(np.arange(1 << 20, dtype=np.int64))
        assert engine.map(_total, [(table,)] * 4) == [int(np.arange(1 << 20).sum())] * 4


def test_a_killed_worker_costs_a_retry_not_the_run(cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    with open_engine(address=cluster) as engine:
        results = engine.map(_die_once, [(str(marker), 40)])
    assert results == [42] and marker.read_text() == "2"


def test_a_task_error_is_raised_as_the_task_raised_it(cluster: str) -> None:
    with open_engine(address=cluster) as engine, pytest.raises(ConfigError, match="bad value 3"):
        engine.map(_refuse, [(3,)])


@pytest.mark.slow
def test_auto_search_gives_the_same_result_in_process_and_on_two_nodes(cluster: str, monkeypatch, auto_search) -> None:
    """Same inputs and seed: the same front, predictions, verifications and choice as in-process."""
    monkeypatch.setenv("LUTGEN_ENGINE", "reference")
    names = ["trunc8s_k6", "bam8s_h3v8", "round8s_k3", "drum8s_k4", "loa8s_k6"]
    local = auto_search(names, verify=3, rounds=2)
    with open_engine(address=cluster) as engine:
        remote = auto_search(names, verify=3, rounds=2, engine=engine)
    assert remote.chosen.choice == local.chosen.choice
    assert remote.chosen.verified_accuracy == local.chosen.verified_accuracy
    assert [(p.choice, p.energy, p.loss) for p in remote.front] == [(p.choice, p.energy, p.loss) for p in local.front]
    assert [(p.predicted_accuracy, p.verified_accuracy) for p in remote.front] == [
        (p.predicted_accuracy, p.verified_accuracy) for p in local.front
    ]
    assert len(local.verified) >= 3
