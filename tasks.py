"""Pure tasks, run in-process or on Ray: one small engine for every embarrassingly parallel job.

A *task* is a module-level function of its arguments only: inputs in, result out, seeded where it draws
random numbers. It writes no files and never touches the catalogue, so the driver can run it in its own
process or ship it to a Ray worker and get the same result; only the driver writes. :func:`open_engine`
chooses the engine: in-process unless ``workers`` or ``address`` is given (small jobs never pay Ray's
start-up), a local Ray instance with ``workers`` CPUs, or an existing cluster at ``address`` (``auto``
or ``host:port``). Large inputs (models, tables, data) are :meth:`Engine.put` once and the handle is
passed to many tasks; Ray then ships them through its object store once per node, not per task.

Example:
    >>> with open_engine() as engine:
    ...     shared = engine.put(10)
    ...     engine.map(pow, [(shared, 2), (shared, 3)])
    [100, 1000]
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import ConfigError, LutgenError

R = TypeVar("R")

#: What :meth:`Engine.put` returns: the value itself in-process, a Ray object reference on Ray. Pass it
#: as a top-level argument of a task; the task receives the value.
Handle = Any

INSTALL_HINT = "pip install 'lutgen[ray]' (make install does it)"
#: Object store of a local Ray instance started here: small, the machine is shared.
OBJECT_STORE_MB = 256
#: Most workers of a local Ray instance (``--workers``): each is a process holding its own copy of a model.
MAX_WORKERS = 256
#: What ``--ray-address`` takes besides ``auto`` (the cluster this machine belongs to): ``HOST:PORT`` or
#: ``ray://HOST:PORT`` (Ray Client).
RAY_ADDRESS = re.compile(r"(?:ray://)?(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")
#: Seconds a cluster address gets to accept a connection before the job is refused (Ray itself retries for
#: minutes).
CONNECT_TIMEOUT_S = 10.0
#: Environment variables a Ray worker must see as the driver does (kernel engine, caches, library).
FORWARDED_ENV_PREFIX = "LUTGEN_"


class TaskError(LutgenError):
    """A task could not be completed (e.g. its worker died more often than the retries allow)."""


class Engine(ABC):
    """Runs tasks; results come back in the order the calls were given."""

    #: How many tasks may run at once (1 in-process).
    workers: int = 1
    #: One line for reports (``in-process``, ``Ray, 2 local workers``, ``Ray cluster at ...``).
    description: str = ""
    #: Seconds spent starting or joining the engine.
    start_seconds: float = 0.0

    @abstractmethod
    def put(self, value: Any) -> Handle:
        """Share ``value`` with every task that gets the returned handle as an argument."""

    @abstractmethod
    def submit(self, task: Callable[..., R], *args: Any) -> Any:
        """Start ``task(*args)``; returns a pending result for :meth:`gather`."""

    @abstractmethod
    def gather(self, pending: Sequence[Any]) -> list[Any]:
        """Wait for pending results and return them in order (a task's own error is raised here)."""

    def map(self, task: Callable[..., R], calls: Sequence[Sequence[Any]]) -> list[R]:
        """``[task(*args) for args in calls]``, run by this engine."""
        return self.gather([self.submit(task, *args) for args in calls])

    @abstractmethod
    def close(self) -> None:
        """Release what the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(Engine):
    """Runs each task in this process when its result is gathered (no start-up, no copies)."""

    description = "in-process"

    def put(self, value: Any) -> Handle:
        return value

    def submit(self, task: Callable[..., R], *args: Any) -> Any:
        return functools.partial(task, *args)

    def gather(self, pending: Sequence[Any]) -> list[Any]:
        return [call() for call in pending]

    def close(self) -> None:
        """Nothing to release."""


class RayEngine(Engine):
    """Runs tasks on Ray: a local instance with ``workers`` CPUs, or the cluster at ``address``.

    A task whose worker dies (killed, out of memory, node lost) is retried up to ``max_retries`` times
    on another worker; an exception the task itself raises is not retried and reaches the caller as it
    was raised. If this process is already connected to Ray (e.g. a test's cluster), that connection is
    used and left open on :meth:`close`.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        address: str | None = None,
        max_retries: int = 3,
        object_store_mb: int = OBJECT_STORE_MB,
    ) -> None:
        ray = require_ray()
        self._ray = ray
        self.max_retries = max_retries
        self._remote: dict[Callable[..., Any], Any] = {}
        start = time.perf_counter()
        self._owner = not ray.is_initialized()
        if self._owner:
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
            options: dict[str, Any] = {
                "runtime_env": {"env_vars": env},
                "logging_level": logging.ERROR,
                "log_to_driver": False,
            }
            if address is None:
                options |= {
                    "num_cpus": workers,
                    "object_store_memory": object_store_mb << 20,
                    "include_dashboard": False,
                }
            try:
                # "local": a new instance even where another Ray runs on this machine (a shared one)
                ray.init(address=address or "local", **options)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ConfigError(f"cannot start or join {where}: {error}") from None
        self.start_seconds = time.perf_counter() - start
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        if address is None and self._owner:
            self.description = f"Ray, {self.workers} local workers"
        else:
            self.description = f"Ray cluster, {nodes} node(s), {self.workers} CPUs"

    def put(self, value: Any) -> Handle:
        return self._ray.put(value)

    def submit(self, task: Callable[..., R], *args: Any) -> Any:
        remote = self._remote.get(task)
        if remote is None:
            remote = self._ray.remote(num_cpus=1, max_retries=self.max_retries)(task)
            self._remote[task] = remote
        return remote.remote(*args)

    def gather(self, pending: Sequence[Any]) -> list[Any]:
        exceptions = self._ray.exceptions
        try:
            return list(self._ray.get(list(pending)))
        except exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, Exception) and not isinstance(cause, exceptions.RayError):
                raise cause from None
            raise TaskError(f"a task failed on Ray: {error}") from None
        except exceptions.RayError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise TaskError(f"a Ray task failed after {self.max_retries} retries: {first}") from None

    def close(self) -> None:
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


def check_engine_options(*, workers: int | None, address: str | None) -> None:
    """Check the engine options before any work: ranges, not both, Ray installed when either is given, and
    something answering at a cluster address.

    Raises:
        ConfigError: one line naming the option (exit code 2).
    """
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be 1..{MAX_WORKERS}, got {workers}")
    if address is not None and workers is not None:
        raise ConfigError("give --workers (start a local Ray instance) or --ray-address (join a cluster), not both")
    if address is not None:
        check_ray_address(address)
    if workers is not None or address is not None:
        require_ray()
    unreachable = None if address is None else _unreachable(address)
    if unreachable is not None:  # (Ray would retry for minutes, deaf to Ctrl-C)
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {unreachable}")


def check_ray_address(address: str) -> str:
    """``address`` when it is one ``--ray-address`` takes (see :data:`RAY_ADDRESS`), else :class:`ConfigError`."""
    form = RAY_ADDRESS.fullmatch(address)
    if address != "auto" and (form is None or not 1 <= int(form["port"]) <= 65535):
        raise ConfigError(f"--ray-address {address!r}: use 'auto', HOST:PORT or ray://HOST:PORT (port 1..65535)")
    return address


def _unreachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` or ``ray://HOST:PORT`` address (a TCP connection within
    ``timeout`` seconds), or ``None`` where something does; ``None`` for ``auto`` (Ray finds the local cluster)."""
    form = RAY_ADDRESS.fullmatch(address)
    if form is None:
        return None
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    try:
        with socket.create_connection((host, int(form["port"])), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers/--ray-address need Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def open_engine(*, workers: int | None = None, address: str | None = None) -> Iterator[Engine]:
    """The engine for a job: in-process unless ``workers`` (a local Ray instance) or ``address`` is given.

    ``workers`` must be 1 .. :data:`MAX_WORKERS` (``workers=1`` runs the tasks in one Ray worker, out of
    this process); see :func:`check_engine_options`.
    """
    check_engine_options(workers=workers, address=address)
    local = address is None and workers is None
    engine: Engine = InProcess() if local else RayEngine(workers=workers, address=address)
    try:
        yield engine
    finally:
        engine.close()


__all__ = [
    "Engine",
    "Handle",
    "InProcess",
    "RayEngine",
    "TaskError",
    "check_engine_options",
    "check_ray_address",
    "open_engine",
    "require_ray",
]
