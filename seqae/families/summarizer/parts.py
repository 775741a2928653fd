"""The summariser's networks: a recurrent encoder over embedded words, the compressor's attentional
decoder that emits words one at a time, the reconstructor's attentional decoder (teacher-forced), and the
readability discriminator. Every network takes *embedded* words, so a straight-through one-hot summary
(``one_hot @ embedding.weight``) and sampled word ids (``embedding(ids)``) go through the same code."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from seqae.nn.losses import nll_by_example
from seqae.nn.straight_through import one_hot_rows


class WordEncoder(nn.Module):
    """Embedded words ``(B, T, E)`` with ``lengths`` ``(B,)`` -> states ``(B, T, H)`` and a summary
    ``(B, H)``: a bidirectional GRU (packed, so padding never reaches a state), its two directions
    projected to ``H``."""

    def __init__(self, embed_dim: int, hidden: int):
        super().__init__()
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, hidden)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, last = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=embedded.shape[1])
        return torch.tanh(self.project(states)), torch.tanh(self.project(torch.cat([last[0], last[1]], dim=-1)))


def attend(query: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dot-product attention: ``query`` ``(B, [S,] H)`` over ``states`` ``(B, T, H)`` where ``mask``
    ``(B, T)`` is true -> contexts ``(B, [S,] H)``."""
    single = query.dim() == 2
    q = query[:, None] if single else query
    context = attention_weights(q, states, mask) @ states
    return context[:, 0] if single else context


def attention_weights(query: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dot-product attention weights of ``query`` ``(B, S, H)`` over ``states`` ``(B, T, H)`` where ``mask``
    ``(B, T)`` is true -> ``(B, S, T)``, each row summing to 1."""
    scores = (query @ states.transpose(1, 2)).masked_fill(~mask[:, None], float("-inf"))
    return torch.softmax(scores, dim=-1)


def cell_over(cell: nn.GRUCell, inputs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The cell's recurrence over known inputs ``(B, S, E)`` from ``h`` ``(B, H)`` in one call -> every step's
    state ``(B, S, H)``: the values of stepping the cell, as one recurrent kernel (teacher forcing, where each
    step's input does not wait on the step before). The cell's own weights go into the kernel ``nn.GRU``
    calls; no module holds them, so nothing re-packs them in place (cuDNN's flattening would, under autograd)
    and on a GPU cuDNN copies the four small tensors at each call, whose warning about it is silenced."""
    weights = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
        # (input, h0, weights, biases, layers, dropout, train: keeps cuDNN's reserve for a backward pass, bidirectional,
        # batch_first)
        states, _ = torch.gru(inputs, h[None], weights, True, 1, 0.0, torch.is_grad_enabled(), False, True)
    return states


def shifted(embedded: torch.Tensor) -> torch.Tensor:
    """Each step's input under teacher forcing: zeros, then the embedded targets but the last ``(B, S, E)``."""
    return torch.cat([torch.zeros_like(embedded[:, :1]), embedded[:, :-1]], dim=1)


class Compressor(nn.Module):
    """Reads the text, writes ``L_b`` words per example (``L_b`` given). Each step: GRU cell on the
    previous emitted word's embedding, attention over the text's states, logits over the vocabulary
    tied to the word embeddings. ``banned`` token ids (padding, BOS, EOS, UNK) are never emitted."""

    def __init__(self, embedding: nn.Embedding, hidden: int, banned: list[int]):
        super().__init__()
        self.__dict__["embedding"] = embedding  # shared, registered once by the model
        embed_dim = embedding.weight.shape[1]
        self.encoder = WordEncoder(embed_dim, hidden)
        self.cell = nn.GRUCell(embed_dim, hidden)
        self.out = nn.Linear(2 * hidden, embed_dim)
        self.register_buffer("banned", torch.tensor(banned, dtype=torch.long), persistent=False)

    def logits_step(self, h: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = attend(h, states, mask)
        logits = torch.tanh(self.out(torch.cat([h, context], dim=-1))) @ self.embedding.weight.t()
        return logits.index_fill(-1, self.banned, float("-inf"))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, summary_lengths: torch.Tensor, mode: str,
                tau: float = 1.0, targets: torch.Tensor | None = None, distributions: bool = False,
                encoded: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``mode``: ``"gumbel"`` -> straight-through one-hots ``(B, L, V)``; ``"sample"`` / ``"greedy"``
        -> word ids ``(B, L)``; ``"teacher"`` -> the given ``targets`` ``(B, L)`` fed back (teacher forcing).
        Also returns the log-probability of each emitted word ``(B, L)`` (0 past an example's ``L_b``),
        and with ``distributions`` every step's log-probabilities ``(B, L, V)``. ``encoded``: the encoder's
        ``(states, summary)`` of these tokens when already made (one pass for several decodings)."""
        states, h = encoded or self.encoder(self.embedding(tokens), lengths)
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None].to(tokens.device)
        steps = int(summary_lengths.max())
        valid = torch.arange(steps, device=tokens.device)[None] < summary_lengths[:, None].to(tokens.device)
        if mode == "teacher":
            return self.teacher(states, h, mask, valid, targets[:, :steps], distributions)
        previous = self.embedding.weight.new_zeros(tokens.shape[0], self.embedding.weight.shape[1])
        words, log_prob, kept = [], [], []
        for t in range(steps):
            h = self.cell(previous, h)
            logp = torch.log_softmax(self.logits_step(h, states, mask), dim=-1)
            if distributions:
                kept.append(logp)
            if mode == "gumbel":
                word = straight_through_gumbel(logp, tau)
                previous = one_hot_rows(word, self.embedding.weight)
                chosen = (word * logp.masked_fill(torch.isinf(logp), 0.0)).sum(-1)
            else:
                ids = torch.multinomial(logp.exp(), 1)[:, 0] if mode == "sample" else logp.argmax(-1)
                word, previous = ids, self.embedding(ids)
                chosen = logp.gather(1, ids[:, None])[:, 0]
            # past an example's L_b, and (teacher forcing) at a target the compressor may not emit (UNK): nothing
            log_prob.append(torch.where(valid[:, t] & torch.isfinite(chosen), chosen, torch.zeros_like(chosen)))
            words.append(word)
        if distributions:
            return torch.stack(words, dim=1), torch.stack(log_prob, dim=1), torch.stack(kept, dim=1)
        return torch.stack(words, dim=1), torch.stack(log_prob, dim=1)

    def teacher(self, states, h, mask, valid, targets, distributions):
        """Teacher forcing, every step at once (the targets are the inputs): the same outputs as stepping."""
        hs = cell_over(self.cell, shifted(self.embedding(targets)), h)
        logp = torch.log_softmax(self.logits_step(hs, states, mask), dim=-1)  # (B, S, V)
        chosen = logp.gather(-1, targets[..., None])[..., 0]
        log_prob = torch.where(valid & torch.isfinite(chosen), chosen, torch.zeros_like(chosen))
        return (targets, log_prob, logp) if distributions else (targets, log_prob)


class Extractor(nn.Module):
    """Reads the text, picks ``L_b`` of its tokens in their order (a monotone pointer: deletion-based
    compression). Each step: GRU cell on the previously picked word's embedding, attention over the text's
    states, and a score for every position after the last pick that leaves enough positions for the words
    still to pick. The same interface as :class:`Compressor`: ``"gumbel"`` gives straight-through word
    one-hots ``(B, L, V)`` (a one-hot over positions, times the text's one-hots), ``"teacher"`` picks the
    positions ``targets`` ``(B, L)`` (increasing; the first ``L``: the lead), and ``distributions`` the word
    distributions ``(B, L, V)`` the position distributions make (a word's probability is the sum of its
    positions')."""

    def __init__(self, embedding: nn.Embedding, hidden: int):
        super().__init__()
        self.__dict__["embedding"] = embedding
        embed_dim = embedding.weight.shape[1]
        self.encoder = WordEncoder(embed_dim, hidden)
        self.cell = nn.GRUCell(embed_dim, hidden)
        self.query = nn.Linear(2 * hidden, hidden)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, summary_lengths: torch.Tensor, mode: str,
                tau: float = 1.0, targets: torch.Tensor | None = None, distributions: bool = False,
                encoded: tuple[torch.Tensor, torch.Tensor] | None = None):
        embedded = self.embedding(tokens)
        states, h = encoded or self.encoder(embedded, lengths)
        device, (batch, length) = tokens.device, tokens.shape
        lengths, summary_lengths = lengths.to(device), summary_lengths.to(device)
        positions = torch.arange(length, device=device)[None]
        text = positions < lengths[:, None]
        steps = int(summary_lengths.max())
        if mode == "teacher":
            return self.teacher(tokens, embedded, states, h, text, lengths, summary_lengths, targets[:, :steps], distributions)
        last = torch.full((batch,), -1, device=device)
        previous = embedded.new_zeros(batch, embedded.shape[2])
        words, log_prob, kept = [], [], []
        for t in range(steps):
            h = self.cell(previous, h)
            query = self.query(torch.cat([h, attend(h, states, text)], dim=-1))
            left = (summary_lengths - t - 1).clamp_min(0)
            allowed = text & (positions > last[:, None]) & (positions < (lengths - left)[:, None])
            allowed = torch.where(allowed.any(1, keepdim=True), allowed, text)  # past an example's L_b: anything (masked later)
            logp = torch.log_softmax((states @ query[:, :, None])[..., 0].masked_fill(~allowed, float("-inf")), dim=-1)
            if distributions:
                kept.append(torch.log(by_word(logp.exp(), tokens, self.embedding.weight.shape[0]).clamp_min(1e-12)))
            if mode == "gumbel":
                pick = straight_through_gumbel(logp, tau)  # (B, T)
                word = by_word(pick, tokens, self.embedding.weight.shape[0])
                previous = (pick[:, None] @ embedded)[:, 0]
                at = pick.argmax(-1)
                chosen = (pick * logp.masked_fill(torch.isinf(logp), 0.0)).sum(-1)
            else:
                at = torch.multinomial(logp.exp(), 1)[:, 0] if mode == "sample" else logp.argmax(-1)
                word = tokens.gather(1, at[:, None])[:, 0]
                previous = embedded[torch.arange(batch, device=device), at]
                chosen = logp.gather(1, at[:, None])[:, 0]
            valid = t < summary_lengths
            last = torch.where(valid, at, last)
            log_prob.append(torch.where(valid & torch.isfinite(chosen), chosen, torch.zeros_like(chosen)))
            words.append(word)
        if distributions:
            return torch.stack(words, dim=1), torch.stack(log_prob, dim=1), torch.stack(kept, dim=1)
        return torch.stack(words, dim=1), torch.stack(log_prob, dim=1)

    def teacher(self, tokens, embedded, states, h, text, lengths, summary_lengths, targets, distributions):
        """Teacher forcing, every step at once: step ``t``'s input is the word at the pick before, its
        choice after the last pick within ``L_b`` and leaving room for the ``L_b - t - 1`` still to come."""
        device, (batch, steps) = embedded.device, targets.shape
        at = torch.minimum(targets, (lengths - 1)[:, None])  # (B, S)
        hs = cell_over(self.cell, shifted(embedded[torch.arange(batch, device=device)[:, None], at]), h)
        query = self.query(torch.cat([hs, attend(hs, states, text)], dim=-1))  # (B, S, H)
        t = torch.arange(steps, device=device)[None]
        made = torch.minimum(t, summary_lengths[:, None])  # picks made within L_b before step t
        last = torch.where(made > 0, at.gather(1, (made - 1).clamp_min(0)), torch.full_like(at, -1))
        left = (summary_lengths[:, None] - t - 1).clamp_min(0)
        positions = torch.arange(text.shape[1], device=device)[None, None]
        allowed = text[:, None] & (positions > last[..., None]) & (positions < (lengths[:, None] - left)[..., None])
        allowed = torch.where(allowed.any(-1, keepdim=True), allowed, text[:, None])  # (B, S, T)
        logp = torch.log_softmax((query @ states.transpose(1, 2)).masked_fill(~allowed, float("-inf")), dim=-1)
        chosen = logp.gather(-1, at[..., None])[..., 0]
        log_prob = torch.where((t < summary_lengths[:, None]) & torch.isfinite(chosen), chosen, torch.zeros_like(chosen))
        words = tokens.gather(1, at)
        if distributions:
            return words, log_prob, torch.log(by_word(logp.exp(), tokens, self.embedding.weight.shape[0]).clamp_min(1e-12))
        return words, log_prob


def by_word(weights: torch.Tensor, tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Weights over the text's positions ``(B, [S,] T)`` summed by the token there -> ``(B, [S,] V)``: a
    position distribution's word distribution, a one-hot pick's word one-hot (what a product with the text's
    one-hots gives, without making them; the gradient is a gather)."""
    index = tokens if weights.dim() == 2 else tokens[:, None].expand_as(weights)
    return weights.new_zeros(*weights.shape[:-1], vocab_size).scatter_add(-1, index, weights)


def straight_through_gumbel(logp: torch.Tensor, tau: float) -> torch.Tensor:
    """One-hot ``argmax(logp + g)`` forward, ``softmax((logp + g) / tau)`` backward, ``g`` Gumbel noise
    ``-log(-log u)`` (from uniform draws: several times faster on the CPU than torch's exponential draws)."""
    u = torch.rand_like(logp).clamp_(1e-10, 1.0 - 1e-7)
    noisy = logp - torch.log(-torch.log(u))
    soft = torch.softmax(noisy / tau, dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, noisy.argmax(-1, keepdim=True), 1.0)
    return hard + soft - soft.detach()


class Reconstructor(nn.Module):
    """Reads the summary's embedded words, rebuilds the text with teacher forcing: a GRU decoder over
    BOS + the text, attention (Luong's, on the decoder states) over the summary's states, logits tied to
    the word embeddings. With ``pointer`` it may also copy the summary's words (a pointer-generator, See et
    al. 2017): ``p(w) = g p_vocab(w) + (1 - g) sum_{j: y_j = w} a_j``, the gate ``g`` from the decoder
    state and context, ``a`` the attention weights; ``words`` are then the summary's word ids ``(B, L)`` or
    its (straight-through) one-hots ``(B, L, V)``. Returns the negative log-likelihood summed per example
    ``(B,)`` and the number of target tokens guessed right per example ``(B,)``."""

    def __init__(self, embedding: nn.Embedding, hidden: int, pointer: bool = False):
        super().__init__()
        self.__dict__["embedding"] = embedding
        embed_dim = embedding.weight.shape[1]
        self.encoder = WordEncoder(embed_dim, hidden)
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True)
        self.out = nn.Linear(2 * hidden, embed_dim)
        self.gate = nn.Linear(2 * hidden, 1) if pointer else None

    def forward(self, summary: torch.Tensor, summary_lengths: torch.Tensor, tokens: torch.Tensor,
                lengths: torch.Tensor, bos: int, words: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        states, h = self.encoder(summary, summary_lengths)
        mask = torch.arange(summary.shape[1], device=summary.device)[None] < summary_lengths[:, None].to(summary.device)
        inputs = torch.cat([torch.full_like(tokens[:, :1], bos), tokens[:, :-1]], dim=1)
        decoded, _ = self.rnn(self.embedding(inputs), h[None])
        weights = attention_weights(decoded, states, mask)  # (B, T, L)
        joint = torch.cat([decoded, weights @ states], dim=-1)
        real = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None].to(tokens.device)
        example, position = real.nonzero(as_tuple=True)  # the text's tokens: the padding is never scored
        logits = torch.tanh(self.out(joint[example, position])) @ self.embedding.weight.t()  # (N, V)
        if self.gate is None:
            logp = torch.log_softmax(logits, dim=-1)
        else:
            gate = torch.sigmoid(self.gate(joint[example, position]))
            at = weights[example, position]  # (N, L): each target token's attention over the summary
            copied = by_word(at, words[example], logits.shape[-1]) if words.dim() == 2 else (weights @ words)[example, position]
            logp = torch.log((gate * torch.softmax(logits, dim=-1) + (1 - gate) * copied).clamp_min(1e-12))
        return nll_by_example(logp, tokens[example, position], example, len(tokens))


class Discriminator(nn.Module):
    """Is an embedded word sequence a real sentence? A GRU over its own word embeddings (applied to ids,
    or to one-hots through ``weights``), the last state of the real words -> one logit ``(B,)``; with
    ``per_word``, every prefix's state -> a logit per word ``(B, L)`` (Wang & Lee's per-word scores)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.GRU(embed_dim, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, per_word: bool = False) -> torch.Tensor:
        """``words``: ids ``(B, L)`` or one-hots ``(B, L, V)``."""
        embedded = self.embedding(words) if words.dim() == 2 else one_hot_rows(words, self.embedding.weight)
        states, _ = self.rnn(embedded)
        if per_word:
            return self.score(states)[..., 0]
        last = states[torch.arange(words.shape[0], device=words.device), (lengths - 1).to(words.device)]
        return self.score(last)[:, 0]


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1)
