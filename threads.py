"""Thread counts held for a block: numpy's BLAS at one thread, torch's intra-op count at a caller's choice.

lutgen's numpy linear algebra is on small matrices (a 256 x 256 table's SVD, a histogram times a table), and
its parallel work is torch's (OpenMP) or Ray's. OpenBLAS's own threads, once woken by a numpy call, keep spinning
for a while and take the cores from torch's threads: on two cores the auto search for VGG-19 took 35 s with them
and 22 s without (LeNet-5: 5.9 s and 2.9 s), with the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from threadpoolctl import threadpool_limits


def one_blas_thread() -> AbstractContextManager[Any]:
    """For the block, numpy's BLAS runs on one thread (restored after); torch's threads are left alone."""
    return threadpool_limits(limits=1, user_api="blas")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """For the block, torch runs ``threads`` intra-op threads (``None``: its current count); yields the count in
    force and puts the previous one back after, so an in-process caller keeps its own."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
