"""The task engine without Ray: in-process runs, option checks, and the message when Ray is missing."""

from __future__ import annotations

import sys

import pytest

from approxlut.errors import ConfigError
from approxlut.tasks import MAX_WORKERS, InProcess, check_ray_address, open_engine, require_ray


def _divide(a: float, b: float) -> float:
    return a / b


def test_in_process_runs_tasks_in_order_and_shares_values() -> None:
    with open_engine() as engine:
        assert isinstance(engine, InProcess) and engine.start_seconds == 0
        table = engine.put([1.0, 2.0, 4.0])
        assert engine.put(table) is table  # no copies in-process
        assert engine.map(_divide, [(8.0, 2.0), (1.0, 4.0)]) == [4.0, 0.25]
        pending = [engine.submit(sum, table), engine.submit(len, table)]
        assert engine.gather(pending) == [7.0, 3]


def test_a_task_error_reaches_the_caller_when_gathered() -> None:
    engine = InProcess()
    pending = engine.submit(_divide, 1.0, 0.0)  # nothing runs yet
    with pytest.raises(ZeroDivisionError):
        engine.gather([pending])


def test_engine_options_are_checked() -> None:
    for workers in (0, MAX_WORKERS + 1):
        with pytest.raises(ConfigError, match=rf"--workers must be 1\.\.{MAX_WORKERS}"), open_engine(workers=workers):
            pass
    with pytest.raises(ConfigError, match="not both"), open_engine(workers=2, address="auto"):
        pass
    for address in ("auto", "10.0.0.1:6379", "ray://head.example:10001", "[::1]:6379"):
        assert check_ray_address(address) == address
    for address in ("", "head", "head:0", "head:65536", "head:6379;rm -rf /", "http://head:80"):
        with pytest.raises(ConfigError, match="--ray-address"):
            check_ray_address(address)


def test_a_cluster_address_nothing_answers_at_is_refused_at_once() -> None:
    """Ray retries a dead address for minutes and ignores Ctrl-C meanwhile; the job is refused before it starts."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            with (
                pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at {address}"),
                open_engine(address=address),
            ):
                pass


def test_without_ray_the_error_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError) as error:
        require_ray()
    message = str(error.value)
    assert "\n" not in message and "pip install 'lutgen[ray]'" in message
    with pytest.raises(ConfigError, match="lutgen\\[ray\\]"), open_engine(workers=2):
        pass
