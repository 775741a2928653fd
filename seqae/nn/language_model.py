"""A recurrent language model of token ids (the ``language_model`` family's network, and the summariser's
prior): embeddings, a GRU, and an output layer tied to the embeddings. Words go in as ids ``(B, L)`` or as
(straight-through) one-hots ``(B, L, V)``, so a prior's gradient can reach whatever emitted them."""

from __future__ import annotations

import math

import torch
from torch import nn

from seqae.nn.losses import nll_by_example
from seqae.nn.straight_through import one_hot_rows


class RecurrentLM(nn.Module):
    """``next_log_probs(words)``: the log-probability of every next token ``(B, L + 1, V)`` given BOS and
    the words before it (position ``t`` predicts word ``t``; position ``L`` predicts what follows the
    last word). ``sequence_nll(tokens, lengths)``: the negative log-likelihood of each sequence and its
    EOS ``(B,)`` and the right guesses ``(B,)``."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0,
                 bos: int = 2, eos: int = 3):
        super().__init__()
        self.bos, self.eos = bos, eos
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.rnn = nn.GRU(embed_dim, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, embed_dim)

    def embed(self, words: torch.Tensor) -> torch.Tensor:
        return self.embedding(words) if words.dim() == 2 else one_hot_rows(words, self.embedding.weight)

    def next_log_probs(self, words: torch.Tensor) -> torch.Tensor:
        """``words``: ids ``(B, L)`` or one-hots ``(B, L, V)`` -> log-probabilities ``(B, L + 1, V)``."""
        logits = self.out(self.drop(self.states(words))) @ self.embedding.weight.t()
        return torch.log_softmax(logits, dim=-1)

    def states(self, words: torch.Tensor) -> torch.Tensor:
        """The GRU's top-layer states over BOS + ``words`` (ids ``(B, L)`` or one-hots) ``(B, L + 1, H)``."""
        first = self.embedding.weight.new_zeros(words.shape[0], 1, self.embedding.weight.shape[1])
        first = first + self.embedding.weight[self.bos]
        inputs = torch.cat([first, self.embed(words)], dim=1)
        return self.rnn(self.drop(inputs))[0]

    def sequence_nll(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example NLL summed over the ``lengths`` tokens and the EOS after them ``(B,)``, and the
        number of those ``lengths + 1`` targets guessed right ``(B,)``."""
        lengths = lengths.to(tokens.device)
        positions = torch.arange(tokens.shape[1] + 1, device=tokens.device)[None]
        targets = torch.cat([tokens, torch.zeros_like(tokens[:, :1])], dim=1)
        targets = torch.where(positions == lengths[:, None], torch.full_like(targets, self.eos), targets)
        example, position = (positions <= lengths[:, None]).nonzero(as_tuple=True)  # padding never scored
        states = self.drop(self.states(tokens))[example, position]
        logits = self.out(states) @ self.embedding.weight.t()  # (N, V)
        return nll_by_example(torch.log_softmax(logits, dim=-1), targets[example, position], example, len(tokens))

    @torch.no_grad()
    def perplexity(self, sequences: list, batch_size: int = 128) -> float:
        """Per-token perplexity (each sequence's tokens and its EOS) of id sequences (arrays or lists)."""
        from torch.nn.utils.rnn import pad_sequence

        device = self.embedding.weight.device
        nll, count = 0.0, 0
        for start in range(0, len(sequences), batch_size):
            rows = [torch.as_tensor(list(s), dtype=torch.long) for s in sequences[start : start + batch_size]]
            lengths = torch.tensor([len(r) for r in rows])
            total, _ = self.sequence_nll(pad_sequence(rows, batch_first=True).to(device), lengths.to(device))
            nll, count = nll + float(total.sum()), count + int(lengths.sum()) + len(rows)
        return math.exp(nll / max(count, 1))

    @torch.no_grad()
    def final_states(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The top layer's state after each sequence's last token ``(B, H)``."""
        first = self.embedding.weight[self.bos].expand(tokens.shape[0], 1, -1)
        states, _ = self.rnn(torch.cat([first, self.embedding(tokens)], dim=1))
        return states[torch.arange(tokens.shape[0], device=tokens.device), lengths.to(tokens.device)]

    @torch.no_grad()
    def sample(self, count: int, max_tokens: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> list[list[int]]:
        """``count`` sequences drawn token by token until EOS (or ``max_tokens``), as id lists."""
        device = self.embedding.weight.device
        previous = torch.full((count, 1), self.bos, dtype=torch.long, device=device)
        hidden, out, done = None, [[] for _ in range(count)], torch.zeros(count, dtype=torch.bool, device=device)
        for _ in range(max_tokens):
            states, hidden = self.rnn(self.embedding(previous), hidden)
            logits = (self.out(states[:, -1]) @ self.embedding.weight.t()) / temperature
            logits[:, : self.eos] = float("-inf")  # padding, UNK, BOS: never drawn
            ids = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            done = done | (ids == self.eos)
            for i, token in enumerate(ids.tolist()):
                if not done[i]:
                    out[i].append(token)
            if bool(done.all()):
                break
            previous = ids[:, None]
        return out
