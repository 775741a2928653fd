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


class ConvEncoder2d(nn.Module):
    """Images ``(batch, in_channels, H, W)`` -> feature maps ``(batch, out_channels, H / 2**downsample, W / 2**downsample)``.

    A 3x3 convolution, ``downsample`` stride-2 4x4 convolutions, a 3x3 convolution, and a 1x1
    projection (ReLU between them), as in the VQ-VAE paper's image encoder without the residual stack.
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int, downsample: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(downsample):
            layers += [nn.Conv2d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvDecoder2d(nn.Module):
    """The mirror of :class:`ConvEncoder2d`: ``(batch, in_channels, h, w)`` -> ``(batch, out_channels, h * 2**upsample, w * 2**upsample)`` (no output activation)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, upsample: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(upsample):
            layers += [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvEncoder1d(nn.Module):
    """Sequences of feature vectors ``(batch, in_channels, frames)`` (e.g. log-mel bands) ->
    ``(batch, out_channels, frames / 2**downsample)``: the 1-D counterpart of :class:`ConvEncoder2d`."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, downsample: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(downsample):
            layers += [nn.Conv1d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv1d(channels, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvDecoder1d(nn.Module):
    """The mirror of :class:`ConvEncoder1d`: ``(batch, in_channels, t)`` -> ``(batch, out_channels, t * 2**upsample)``."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, upsample: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_channels, channels, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(upsample):
            layers += [nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers.append(nn.Conv1d(channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
