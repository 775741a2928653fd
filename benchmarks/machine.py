"""The machine's matrix throughput, the reference that the benchmarks' FLOP shares are taken against."""

from __future__ import annotations

import time

import torch


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an ``n x n`` fp32 torch matmul (two warm-up products, then ``repeats`` timed)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)
