"""What every family shares with the Trainer: the output type and the training-plan hook.

The contract
------------
``model(batch)`` returns a :class:`ModelOutput` with a scalar ``loss`` and a dict of ``metrics``
(floats or 0-d tensors; the Trainer converts and averages them when it logs).

The hook
--------
A family that trains in stages (greedy layer-wise pre-training) or alternates optimisers (an adversary
and the model it fights) defines ``training_stages(steps)``, returning a list of :class:`Stage`. The
Trainer runs the stages in order, each for ``stage.steps`` optimizer steps with a fresh warm-up and
schedule; within a step it gives every :class:`Phase` of the stage its turn: it calls
``model.set_phase(stage.name, phase.name)``, computes ``model(batch).loss``, and steps that phase's
optimizer over that phase's parameters only. A family without the hook trains in one stage with one
phase over all of its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ModelOutput:
    loss: torch.Tensor  # scalar
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass
class Phase:
    """One optimiser's turn within a training step."""

    name: str
    parameters: list[nn.Parameter]


@dataclass
class Stage:
    """A stretch of training with its own optimisers and schedule."""

    name: str
    steps: int
    phases: list[Phase]
    data: str = "all"  # the training data it sees: "all", or a subset its BatchSource offers ("labelled")


def single_stage(model: nn.Module, steps: int) -> list[Stage]:
    """The plan of a family without the hook: one stage, one phase, every parameter."""
    return [Stage("main", steps, [Phase("main", [p for p in model.parameters() if p.requires_grad])])]


def training_plan(model: nn.Module, steps: int) -> list[Stage]:
    if hasattr(model, "training_stages"):
        stages = model.training_stages(steps)
        if not stages or any(s.steps <= 0 or not s.phases for s in stages):
            raise ValueError(f"{type(model).__name__}.training_stages returned an empty stage")
        return stages
    return single_stage(model, steps)


def stage_at(stages: list[Stage], step: int) -> tuple[int, int]:
    """(stage index, step within that stage) of global ``step`` in a training plan."""
    start = 0
    for i, stage in enumerate(stages):
        if step < start + stage.steps:
            return i, step - start
        start += stage.steps
    return len(stages) - 1, stages[-1].steps
