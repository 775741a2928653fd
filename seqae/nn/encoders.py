"""Encoders and decoders shared by the families."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("sigmoid", "relu", "tanh", "elu", "gelu", "linear")


def activation(name: str) -> nn.Module:
    """An activation module by name (one of ``ACTIVATIONS``)."""
    modules = {
        "sigmoid": nn.Sigmoid,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "linear": nn.Identity,
    }
    if name not in modules:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return modules[name]()


class MLP(nn.Sequential):
    """Fully connected layers ``widths[0] -> widths[1] -> ... -> widths[-1]``.

    Input ``(..., widths[0])``, output ``(..., widths[-1])``. ``hidden_activation`` follows every layer
    but the last, which is followed by ``output_activation``.
    """

    def __init__(self, widths: list[int], hidden_activation: str = "relu", output_activation: str = "linear"):
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least an input and an output width, got {widths}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(n_in, n_out))
            last = i == len(widths) - 2
            layers.append(activation(output_activation if last else hidden_activation))
        super().__init__(*layers)
        self.widths = list(widths)
