"""Thread counts held for a block (numpy's BLAS, torch's intra-op threads), and as before after it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from approxlut.threads import one_blas_thread, torch_threads


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


def test_torch_threads_holds_the_count_for_the_block_only() -> None:
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    with torch_threads(other) as count:
        assert count == torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other):
        raise RuntimeError("the block fails")
    assert torch.get_num_threads() == before
    with torch_threads(None) as count:
        assert count == before
