"""numpy's BLAS held to one thread where lutgen's numpy and torch work interleave.

lutgen's numpy linear algebra is on small matrices (a 256 x 256 table's SVD, a histogram times a table), and
its parallel work is torch's (OpenMP) or Ray's. OpenBLAS's own threads, once woken by a numpy call, keep spinning
for a while and take the cores from torch's threads: on two cores the auto search for VGG-19 took 35 s with them
and 22 s without (LeNet-5: 5.9 s and 2.9 s), with the same answer.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import threadpool_limits


def one_blas_thread() -> AbstractContextManager[Any]:
    """For the block, numpy's BLAS runs on one thread (restored after); torch's threads are left alone."""
    return threadpool_limits(limits=1, user_api="blas")
