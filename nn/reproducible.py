"""Reproducible training runs: a fixed thread count, deterministic algorithms, and content hashes of weights.

Float arithmetic is not associative, so a training run gives the same weights, bit for bit, only when
every sum is taken in the same order. On a CPU, torch splits its reductions and GEMMs by the number of
intra-op threads (not by the number of cores), so :func:`deterministic` pins that number for the run;
it also switches torch to its deterministic algorithms (a warning, not an error, for ops that have
none) and cuDNN to deterministic, non-benchmarked kernels. What it cannot pin is the instruction set:
oneDNN and MKL pick kernels per CPU (AVX2, AVX-512, ...) whose roundings differ, so two machines of
different CPU families may still train different float models. :func:`state_sha256` names a model's
weights by their content, so results can say which model a run started from and another machine can
check whether it started from the same one.

Example:
    >>> with deterministic(threads=1):  # doctest: +SKIP
    ...     train_model(model, data, config)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from ..threads import torch_threads

#: cuBLAS needs a fixed workspace to be deterministic (must be set before its first use in the process).
CUBLAS_WORKSPACE = ":4096:8"


@contextmanager
def deterministic(threads: int | None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (``None``: leave torch's count) and deterministic algorithms.

    Yields the thread count in force. Every setting is restored on exit.
    """
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads={threads!r} must be a positive int or None")
    previous_mode = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    with torch_threads(threads) as count:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield count
        finally:
            torch.use_deterministic_algorithms(previous_mode, warn_only=previous_warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's content: names (sorted), dtypes, shapes and values, not the file format.

    Two files holding the same tensors hash alike whatever else they carry (metadata, pickle framing).
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        flat = tensor.reshape(-1)
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()
