"""numpy's BLAS runs on one thread inside :func:`approxlut.threads.one_blas_thread`, as before after it."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from approxlut.threads import one_blas_thread


def _blas_threads() -> list[int]:
    np.linalg.svd(np.ones((8, 8)))  # (numpy's BLAS is loaded by now)
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_one_blas_thread_limits_numpy_blas_for_the_block_only() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library under numpy")
    with one_blas_thread():
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before
