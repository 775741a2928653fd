"""The contract between a model and the Trainer (:mod:`seqae.models.base`): ``model(batch)`` returns a
:class:`ModelOutput`; a model may train in stages of phases. The models themselves live in their
families' folders (:mod:`seqae.families`)."""

from seqae.models.base import ModelOutput, Phase, Stage

__all__ = ["ModelOutput", "Phase", "Stage"]
