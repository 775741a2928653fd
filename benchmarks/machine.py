"""The machine's matrix throughput, the reference that the benchmarks' FLOP shares are taken against, and
the benchmarks' way of measuring each case in a process of its own (so each peak memory is its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def in_own_process(script: str, key: str, name: str, args: list[str]) -> dict:
    """``python SCRIPT --one NAME ARGS`` in a child process: the JSON row its last line prints, or
    ``{key: name, "skipped": ...}`` with its last error line when it fails; the row is also echoed to stderr."""
    done = subprocess.run([sys.executable, script, "--one", name, *args], capture_output=True, text=True, env=os.environ)
    if done.returncode != 0:
        row = {key: name, "skipped": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
    else:
        row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in row.items() if k != "profile"}), file=sys.stderr)  # a profile table is printed apart
    return row
