"""Encoders and decoders shared by the families."""

from __future__ import annotations

import torch
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


def conv_layer(dims: int):
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (sequences) or 2 (images), got {dims}")
    return (nn.Conv1d, nn.ConvTranspose1d) if dims == 1 else (nn.Conv2d, nn.ConvTranspose2d)


class ConvEncoder(nn.Module):
    """Images ``(batch, in_channels, H, W)`` (``dims=2``) or sequences of feature vectors
    ``(batch, in_channels, frames)`` (``dims=1``, e.g. log-mel bands) -> feature maps with every spatial
    size divided by ``2**downsample``.

    A 3-wide convolution, ``downsample`` stride-2 4-wide convolutions, a 3-wide convolution, and a
    1-wide projection (ReLU between them), as in the VQ-VAE paper's encoder without the residual stack.
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int, downsample: int = 1, dims: int = 2):
        super().__init__()
        conv, _ = conv_layer(dims)
        layers: list[nn.Module] = [conv(in_channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(downsample):
            layers += [conv(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers += [conv(channels, channels, 3, padding=1), nn.ReLU(), conv(channels, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: every spatial size multiplied by ``2**upsample`` (no output activation)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, upsample: int = 1, dims: int = 2):
        super().__init__()
        conv, transpose = conv_layer(dims)
        layers: list[nn.Module] = [conv(in_channels, channels, 3, padding=1), nn.ReLU()]
        layers += [conv(channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(upsample):
            layers += [transpose(channels, channels, 4, stride=2, padding=1), nn.ReLU()]
        layers.append(conv(channels, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


READOUTS = ("last", "mean", "max")


def length_groups(lengths: torch.Tensor, width: int) -> list[torch.Tensor]:
    """Row indices of a padded batch ``(batch, width)`` with ``lengths`` ``(batch,)`` for running a one-way
    RNN padded: one group (all rows, in order) when the lengths are similar or the batch is small, else
    the rows sorted by length and split into up to four groups (at least 64 rows each), each to be
    padded only to its own longest row."""
    count = min(4, lengths.shape[0] // 64)
    if count <= 1 or width <= 1.25 * lengths.float().mean().item():
        return [torch.arange(lengths.shape[0], device=lengths.device)]
    return list(torch.argsort(lengths, descending=True).tensor_split(count))


class RecurrentEncoder(nn.Module):
    """Token ids ``(batch, time)`` with ``lengths`` ``(batch,)`` -> sentence vectors ``(batch, out_dim)``.

    Word embeddings, then a GRU (or LSTM), uni- or bi-directional; padding never reaches the output (a
    one-way RNN runs padded, in groups of similar lengths, and reads its states at the real positions,
    which is exact; a two-way RNN runs on packed sequences; masks for ``mean``/``max``). Read-outs: ``last`` (the final hidden
    state of each direction, as in skip-thought and quick-thought), ``mean`` or ``max`` over the states of
    the real tokens (as InferSent). ``out_dim = hidden * (2 if bidirectional else 1)``. ``dropout``:
    the share of word-embedding units zeroed in training (none at inference).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden: int,
        bidirectional: bool = False,
        readout: str = "last",
        cell: str = "gru",
        num_layers: int = 1,
        pad_id: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(embed_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
        self.readout = readout
        self.bidirectional = bidirectional
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, tokens, lengths):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"expected tokens (batch, time) and lengths (batch,), got {tuple(tokens.shape)} and {tuple(lengths.shape)}")
        if not self.bidirectional:
            return self.one_way(tokens, lengths)
        # two-way: packed sequences, so the backward direction starts at each sentence's last token
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, final = self.rnn(packed)
        if self.readout == "last":
            h_n = final[0] if isinstance(final, tuple) else final  # (layers * dirs, batch, hidden)
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        padded, _ = pad_packed_sequence(states, batch_first=True, total_length=tokens.shape[1])
        return self.pool(padded, tokens, lengths)

    def one_way(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """A one-way RNN's state at a real position never depends on the padding after it, so it runs
        padded and reads its real positions. A batch whose lengths vary a lot is sorted by length and run
        in up to four groups, each padded to its own longest sentence: on the CPU this trains about twice
        as fast as packed sequences, whose backward pass writes a full-size gradient for every time step."""
        device = tokens.device
        lengths = lengths.to(device)
        groups = length_groups(lengths, tokens.shape[1])
        outputs = []
        for rows in groups:
            width = max(1, int(lengths[rows].max()))
            part, part_lengths = tokens[rows, :width], lengths[rows]
            states, _ = self.rnn(self.dropout(self.embedding(part)))
            if self.readout == "last":
                outputs.append(states[torch.arange(len(rows), device=device), (part_lengths - 1).clamp_min(0)])
            else:
                outputs.append(self.pool(states, part, part_lengths))
        if len(groups) == 1:
            return outputs[0]
        order = torch.cat(groups)
        out = torch.empty(tokens.shape[0], outputs[0].shape[1], dtype=outputs[0].dtype, device=device)
        out[order] = torch.cat(outputs)
        return out

    def pool(self, states, tokens, lengths):
        """Mean or max over the states of real tokens: ``(batch, time, dim) -> (batch, dim)``."""
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        if self.readout == "mean":
            return (states * mask[..., None]).sum(1) / lengths.to(states.device)[:, None].clamp_min(1)
        return states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values


def real_token_mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(batch, time)`` True at the real (not padding) positions."""
    return torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]


class TransformerSentenceEncoder(nn.Module):
    """Token ids ``(batch, time)`` with ``lengths`` ``(batch,)`` -> sentence vectors ``(batch, embed_dim)``.

    Word embeddings plus learned positions, ``layers`` pre-norm Transformer encoder layers of width
    ``embed_dim`` (``heads`` attention heads, feed-forward width ``hidden``), padding masked out of the
    attention. Read-outs: ``mean`` or ``max`` over the real tokens' states, or ``cls``: the state of a
    learned vector put before every sentence (BERT's [CLS]). ``out_dim = embed_dim``.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, layers: int = 2, heads: int = 4,
                 readout: str = "mean", max_len: int = 512, pad_id: int = 0, dropout: float = 0.0):
        super().__init__()
        if readout not in ("mean", "max", "cls"):
            raise ValueError(f"a Transformer encoder's readout is mean, max or cls, got {readout!r}")
        if embed_dim % heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of heads ({heads})")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.positions = nn.Parameter(torch.randn(max_len + 1, embed_dim) * 0.02)
        self.cls = nn.Parameter(torch.randn(embed_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(embed_dim, heads, hidden, dropout=dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.readout = readout
        self.max_len = max_len
        self.out_dim = embed_dim

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"expected tokens (batch, time) and lengths (batch,), got {tuple(tokens.shape)} and {tuple(lengths.shape)}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"{tokens.shape[1]} tokens, more than the encoder's {self.max_len} positions")
        width = max(1, int(lengths.max())) if lengths.numel() else 1
        tokens = tokens[:, :width]
        mask = real_token_mask(tokens, lengths)
        x = self.embedding(tokens)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.positions[: width + 1]
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # the [CLS] position is always real
        states = self.norm(self.layers(x, src_key_padding_mask=~keep))
        if self.readout == "cls":
            return states[:, 0]
        states, weights = states[:, 1:], mask[..., None]
        if self.readout == "mean":
            return (states * weights).sum(1) / lengths.to(states.device)[:, None].clamp_min(1)
        empty = (lengths.to(states.device) == 0)[:, None]
        return states.masked_fill(~weights, float("-inf")).max(dim=1).values.masked_fill(empty, 0.0)


class BagOfNgramsEncoder(nn.Module):
    """Token ids ``(batch, time)`` with ``lengths`` ``(batch,)`` -> the mean of the embeddings of the
    sentence's tokens and of its token n-grams (2 to ``ngrams``), ``(batch, embed_dim)``; n-grams are
    hashed into ``buckets`` rows of a second table (as FastSent and Sent2Vec). ``out_dim = embed_dim``.
    """

    def __init__(self, vocab_size: int, embed_dim: int, ngrams: int = 2, buckets: int = 50_000, pad_id: int = 0):
        super().__init__()
        if ngrams < 1 or buckets < 1:
            raise ValueError(f"ngrams and buckets must be positive, got {ngrams} and {buckets}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.ngram_embedding = nn.Embedding(buckets, embed_dim) if ngrams > 1 else None
        self.ngrams, self.buckets, self.vocab_size = ngrams, buckets, vocab_size
        self.out_dim = embed_dim

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(f"expected tokens (batch, time) and lengths (batch,), got {tuple(tokens.shape)} and {tuple(lengths.shape)}")
        lengths = lengths.to(tokens.device)
        mask = real_token_mask(tokens, lengths)
        total = (self.embedding(tokens) * mask[..., None]).sum(1)
        count = lengths.clamp_min(0).float()
        for n in range(2, self.ngrams + 1):
            if tokens.shape[1] < n:
                break
            ids = torch.zeros_like(tokens[:, : tokens.shape[1] - n + 1])
            for k in range(n):  # a polynomial hash of the n token ids, taken modulo the table size
                ids = (ids * self.vocab_size + tokens[:, k : tokens.shape[1] - n + 1 + k]) % self.buckets
            real = mask[:, n - 1 :]
            total = total + (self.ngram_embedding(ids) * real[..., None]).sum(1)
            count = count + real.sum(1)
        return total / count.clamp_min(1)[:, None]
