"""Named fault-injection points, for the tests that prove a run survives being killed anywhere.

With ``SEQAE_FAULT=NAME:STEP`` in the environment the process kills itself with SIGKILL (no cleanup
and no handlers run, as after a power cut or the out-of-memory killer) on reaching point ``NAME`` at
training step ``STEP``. Without the variable every point is a no-op. The points:

- ``step``: mid-step, after the backward pass and before the optimizer update of step STEP;
- ``checkpoint_writing``: half of the weights' temporary file of the checkpoint of step STEP written;
- ``checkpoint_written``: both temporary files of that checkpoint complete, nothing renamed;
- ``checkpoint_commit``: between the two renames (trainer state in place, weights not yet).
"""

from __future__ import annotations

import os
import signal

POINTS = ("step", "checkpoint_writing", "checkpoint_written", "checkpoint_commit")


def failpoint(name: str, step: int) -> None:
    spec = os.environ.get("SEQAE_FAULT")
    if spec and spec == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
