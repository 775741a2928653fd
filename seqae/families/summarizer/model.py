"""The seq2seq2seq autoencoder (Wang & Lee 2018, arXiv 1810.02851; Baziotis et al. 2019, SEQ^3): a
compressor reads a text ``x`` and writes a short word sequence ``y`` (``L_b`` words, a share of the text's
length within bounds); a reconstructor reads only ``y`` and rebuilds ``x``; so ``y`` must carry the text's
content. A discriminator trained on real, unpaired sentences judges whether ``y`` reads like language
and the compressor learns to fool it. The words are discrete; two gradient paths
(``model.through_words``):

- ``gumbel`` (SEQ^3): each word a straight-through Gumbel-softmax one-hot
  ``y_t = onehot(argmax(log p_t + g) )`` forward, ``softmax((log p_t + g) / tau)`` backward, fed on as
  ``y_t E``; the loss ``L = NLL(x | y) + w_r * softplus(-D(y)) + w_lm * mean_t KL(p_t || p_LM(. | y_<t))``
  (``+ w_t * topic``, SEQ^3's topic loss, with ``model.topic_weight``) is differentiated through the words.
- ``reinforce`` (Wang & Lee): words sampled, ``y ~ p(y | x)``; the reward ``R(y) = -NLL(x | y) / |x| +
  w_r * log D(y) + w_lm * mean_t log p_LM(y_t | y_<t)`` with the self-critical baseline ``b = R(y_greedy)``;
  the compressor's loss ``-(R(y) - b) sum_t log p(y_t | y_<t, x)``, the reconstructor's ``NLL(x | y)``.

Readability (``model.readability``): ``discriminator`` (the ``D`` terms; ``D`` trained in alternation on real
sentences against the summaries), ``lm_prior`` (the ``p_LM`` terms: a fixed ``language_model`` run, SEQ^3's
prior), ``both``, or ``none``.

``model.emit = "extract"`` makes the compressor a monotone pointer over the text (each word a pick of a
later position of the text, so the summary is a subsequence of it); the gradient paths are the same, over
positions instead of the vocabulary.

Training starts (``model.pretrain_copy_steps``) with the compressor alone learning to copy the text's
first ``L_b`` words, as Wang & Lee's generator does. Here the discriminator judges the whole sequence
(one score; with ``model.discriminator_scores = "word"`` every prefix, as Wang & Lee's, and REINFORCE
credits each word with the mean score of the words from it on). With ``model.lead_baseline`` a twin reconstructor (its own
weights) learns to rebuild ``x`` from its first ``L_b`` words (Lead-N), the fair baseline for
reconstruction from the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from seqae.config import ConfigError, choice, path_field
from seqae.families.summarizer.data import salient_positions
from seqae.families.summarizer.parts import Compressor, Discriminator, Extractor, Reconstructor, masked_mean
from seqae.models.base import ModelOutput, Phase, Stage, single_stage
from seqae.nn.language_model import RecurrentLM
from seqae.nn.straight_through import one_hot_rows

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3  # the sentence pipeline's special tokens


@dataclass
class SummarizerConfig:
    """``[model]`` for ``family = "summarizer"``."""

    family: str = "summarizer"
    vocab_size: int = 0  # 0: the tokenizer's
    embed_dim: int = 128
    hidden: int = 256
    summary_ratio: float = 0.5  # summary length: round(ratio * text length), within [summary_min, summary_max]
    # training only: each example's ratio drawn uniformly from [low, high] (SEQ^3 samples the length per example);
    # [] trains at summary_ratio; evaluation and `seqae summarize` use summary_ratio (or --ratio / --length)
    summary_ratio_range: list[float] = field(default_factory=list)
    summary_min: int = 3
    summary_max: int = 24
    # which words: any of the vocabulary (SEQ^3; Wang & Lee's generator), or the text's own in their order
    # (a monotone pointer: deletion-based compression, which cannot collapse into repeated words)
    emit: str = choice("vocabulary", "vocabulary", "extract", doc="the words a summary may use")
    through_words: str = choice("gumbel", "gumbel", "reinforce", doc="gradient path through the words")
    tau: float = 0.5  # gumbel: the softmax temperature of the backward pass
    readability: str = choice("discriminator", "discriminator", "lm_prior", "both", "none", doc="what keeps the summary readable")
    readability_weight: float = 0.3  # w_r
    # the discriminator's verdict: one per summary, or one per word (every prefix judged, Wang & Lee's), which
    # REINFORCE turns into per-word credit
    discriminator_scores: str = choice("sequence", "sequence", "word", doc="one discriminator score per summary or per word")
    # readability = lm_prior / both: a language_model run trained on the readable sentences with this run's tokenizer
    lm_prior: str = path_field("", doc="a language_model run directory (recipes/lm_austen.toml)")
    lm_weight: float = 0.1  # w_lm
    lm_embed_dim: int = 0  # the prior's shape, recorded from its run at training
    lm_hidden: int = 0
    lm_layers: int = 0
    discriminator_hidden: int = 128
    lead_baseline: bool = True  # a twin reconstructor rebuilding the text from its first L_b words
    pointer: bool = False  # reconstructor and twin may also copy the summary's words (a pointer-generator)
    pretrain_copy_steps: int = 300  # first, the compressor learns to copy the text's first L_b words (Wang & Lee)
    # one word embedding for compressor and reconstructor (the papers'); false: the reconstructor has its own, so
    # its gradients cannot move the compressor's tied output layer
    share_embeddings: bool = False
    copy_weight: float = 0.0  # w_c: the copy loss kept in the main stage too, an anchor towards the copy target
    # what copy pre-training (and the anchor) teaches: the text's first L_b words (Wang & Lee), or L_b words
    # spread evenly over the text (positions floor((t + 1/2) |x| / L_b)), so that the summary starts out covering it all
    # or "salient": the L_b positions of highest ``idf(x_i) - salience_position * i / |x|`` in the text's order
    # (rare words, early ones first, whole words; the training texts' IDF: no summaries needed)
    copy_target: str = choice("lead", "lead", "spread", "salient", doc="the words copy pre-training teaches")
    salience_position: float = 4.0  # "salient": how much a word's place in the text counts against its IDF
    # SEQ^3's topic loss: 1 - cos of the IDF-weighted mean word embeddings of the text and of the summary
    # (the training texts' IDF); in REINFORCE's reward with the opposite sign
    topic_weight: float = 0.0  # w_t

    def validate(self, where: str) -> None:
        if self.embed_dim <= 0 or self.hidden <= 0 or self.discriminator_hidden <= 0:
            raise ConfigError(f"{where}: model.embed_dim, hidden and discriminator_hidden must be positive")
        if not 0.0 < self.summary_ratio <= 1.0:
            raise ConfigError(f"{where}: model.summary_ratio must be in (0, 1], got {self.summary_ratio}")
        drawn = self.summary_ratio_range
        if drawn and (len(drawn) != 2 or not 0.0 < drawn[0] <= drawn[1] <= 1.0):
            raise ConfigError(f"{where}: model.summary_ratio_range must be [low, high] with 0 < low <= high <= 1 (or [] to "
                              f"train at model.summary_ratio), got {drawn}")
        if not 1 <= self.summary_min <= self.summary_max:
            raise ConfigError(f"{where}: model.summary_min ({self.summary_min}) must be >= 1 and <= model.summary_max "
                              f"({self.summary_max}); a summary length of 0 says nothing")
        if self.pretrain_copy_steps < 0 or self.copy_weight < 0:
            raise ConfigError(f"{where}: model.pretrain_copy_steps and model.copy_weight must be >= 0")
        if self.tau <= 0 or self.readability_weight < 0 or self.lm_weight < 0:
            raise ConfigError(f"{where}: model.tau must be > 0, model.readability_weight and model.lm_weight >= 0")
        if self.salience_position < 0:
            raise ConfigError(f"{where}: model.salience_position must be >= 0, got {self.salience_position}")
        if self.uses_prior and not self.lm_prior:
            raise ConfigError(f"{where}: model.readability = '{self.readability}' needs model.lm_prior, the run directory of a "
                              "language_model run (seqae train recipes/lm_austen.toml)")

    @property
    def uses_discriminator(self) -> bool:
        return self.readability in ("discriminator", "both")

    @property
    def uses_prior(self) -> bool:
        return self.readability in ("lm_prior", "both")

    @property
    def uses_idf(self) -> bool:
        """The topic loss and the salient copy target weigh words by the training texts' IDF."""
        return bool(self.topic_weight) or self.copy_target == "salient"


class Summarizer(nn.Module):
    """``forward(batch)`` takes ``{"tokens": (B, T), "lengths": (B,), "readable": (B', T'),
    "readable_lengths": (B',)}``; ``summarize_tokens`` gives greedy summaries (word ids ``(B, L)`` and
    their lengths)."""

    def __init__(self, config: SummarizerConfig):
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError("model.vocab_size must be set (it is taken from the tokenizer when 0 in the recipe)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.compressor = (Extractor(self.embedding, config.hidden) if config.emit == "extract"
                           else Compressor(self.embedding, config.hidden, [PAD_ID, UNK_ID, BOS_ID, EOS_ID]))
        self.reconstructor_embedding = self.embedding
        if not config.share_embeddings:
            self.reconstructor_embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.reconstructor = Reconstructor(self.reconstructor_embedding, config.hidden, config.pointer)
        self.discriminator = (Discriminator(config.vocab_size, config.embed_dim, config.discriminator_hidden)
                              if config.uses_discriminator else None)
        self.prior = None
        if config.uses_prior:
            if min(config.lm_embed_dim, config.lm_hidden, config.lm_layers) <= 0:
                raise ValueError("model.lm_embed_dim, lm_hidden and lm_layers must be set (recorded from model.lm_prior's run)")
            self.prior = RecurrentLM(config.vocab_size, config.lm_embed_dim, config.lm_hidden, config.lm_layers)
            self.prior.requires_grad_(False)  # fixed: it judges, it does not learn
        if config.lead_baseline:
            self.lead_embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
            self.lead = Reconstructor(self.lead_embedding, config.hidden, config.pointer)
        if config.uses_idf:
            self.register_buffer("idf", torch.ones(config.vocab_size))  # set from the training texts before training
        if config.copy_target == "salient":  # the tokenizer's word pieces (whole-word picks), set before training
            self.register_buffer("continues", torch.zeros(config.vocab_size, dtype=torch.bool))
        self.stage, self.phase = "main", "main"

    # -- the Trainer's hook: the discriminator and the autoencoder alternate ---------------------------

    def training_stages(self, steps: int) -> list[Stage]:
        stages = []
        if self.config.pretrain_copy_steps:
            compressor = [self.embedding.weight, *self.compressor.parameters()]
            stages.append(Stage("copy", self.config.pretrain_copy_steps, [Phase("main", compressor)]))
        if self.discriminator is None:
            return stages + single_stage(self, steps)
        judge = list(self.discriminator.parameters())
        rest = [p for n, p in self.named_parameters() if not n.startswith("discriminator.") and p.requires_grad]
        return stages + [Stage("main", steps, [Phase("discriminator", judge), Phase("main", rest)])]

    def set_phase(self, stage: str, phase: str) -> None:
        self.stage, self.phase = stage, phase

    def train(self, mode: bool = True) -> Summarizer:
        super().train(mode)
        if self.prior is not None:
            self.prior.eval()  # no dropout in the fixed prior
        return self

    # -- building blocks ---------------------------------------------------------------------------

    def summary_lengths(self, lengths: torch.Tensor, ratio: float | torch.Tensor | None = None,
                        length: int | None = None) -> torch.Tensor:
        """``L_b = clamp(round(ratio * |x_b|), summary_min, summary_max)``, never longer than the text
        (or a fixed ``length``); ``ratio`` one for all or one per example ``(B,)``, default ``summary_ratio``."""
        c = self.config
        if length is not None:
            wanted = torch.full_like(lengths, length)
        else:
            ratio = c.summary_ratio if ratio is None else ratio
            wanted = torch.round(ratio * lengths.float()).long().clamp(c.summary_min, c.summary_max)
        return torch.minimum(wanted, lengths).clamp_min(1)

    def drawn_ratios(self, lengths: torch.Tensor) -> torch.Tensor | None:
        """In training with ``summary_ratio_range``: one ratio per example ``(B,)``, uniform in the range."""
        if not (self.training and self.config.summary_ratio_range):
            return None
        low, high = self.config.summary_ratio_range
        return low + (high - low) * torch.rand(lengths.shape, device=lengths.device)

    def reconstruction(self, words, summary_lengths, tokens, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example NLL ``(B,)`` and right guesses ``(B,)`` of the text rebuilt from the summary (word ids
        ``(B, L)`` or straight-through one-hots ``(B, L, V)``)."""
        table = self.reconstructor_embedding
        embedded = table(words) if words.dim() == 2 else one_hot_rows(words, table.weight)
        return self.reconstructor(embedded, summary_lengths, tokens, lengths, BOS_ID, words)

    def lead_reconstruction(self, summary_lengths, tokens, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """The twin's per-example NLL and right guesses from the text's first ``L_b`` tokens."""
        lead = tokens[:, : int(summary_lengths.max())]
        return self.lead(self.lead_embedding(lead), summary_lengths, tokens, lengths, BOS_ID, lead)

    @torch.no_grad()
    def summarize_tokens(self, tokens, lengths, ratio: float | None = None, length: int | None = None):
        """Greedy summaries: word ids ``(B, L)`` (positions past ``L_b`` are padding) and ``L_b`` ``(B,)``."""
        summary_lengths = self.summary_lengths(lengths, ratio, length)
        words, _ = self.compressor(tokens, lengths, summary_lengths, "greedy")
        keep = torch.arange(words.shape[1], device=words.device)[None] < summary_lengths[:, None].to(words.device)
        return words.masked_fill(~keep, PAD_ID), summary_lengths

    def summarize(self, texts: list[str], ratio: float | None = None, length: int | None = None,
                  batch_size: int = 64) -> list[str]:
        """Greedy summaries of ``texts`` (one string each): ``length`` tokens each, or ``ratio`` (default
        the run's ``summary_ratio``) of each text's. Needs the run's tokenizer: ``seqae.load(run).summarize([...])``."""
        from seqae.families.summarizer.texts import summarize

        return summarize(self, texts, ratio, length, batch_size)

    # -- training ----------------------------------------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, lengths = batch["tokens"], batch["lengths"]
        summary_lengths = self.summary_lengths(lengths, self.drawn_ratios(lengths))
        if self.stage == "copy":
            return self.copy_step(tokens, lengths, summary_lengths)
        if self.phase == "discriminator":
            return self.discriminator_step(batch, tokens, lengths, summary_lengths)
        encoded = self.compressor.encoder(self.embedding(tokens), lengths)  # one pass for every decoding below
        if self.config.through_words == "gumbel":
            out = self.gumbel_step(tokens, lengths, summary_lengths, encoded)
        else:
            out = self.reinforce_step(tokens, lengths, summary_lengths, encoded)
        if self.config.copy_weight:
            copy = self.copy_step(tokens, lengths, summary_lengths, encoded).loss
            out.loss = out.loss + self.config.copy_weight * copy
            out.metrics["copy_nll"] = copy.detach()
        if self.config.lead_baseline:
            nll, right = self.lead_reconstruction(summary_lengths, tokens, lengths)
            lead_loss = nll.sum() / lengths.sum()
            out.loss = out.loss + lead_loss
            out.metrics.update(lead_nll=lead_loss.detach(), lead_accuracy=(right.sum() / lengths.sum()).detach())
        return out

    def copy_positions(self, tokens, lengths, summary_lengths) -> torch.Tensor:
        """The text positions copy pre-training teaches ``(B, L)``, increasing and within the text: ``t`` (the
        lead); with ``copy_target = "spread"``, ``floor((t + 1/2) |x| / L_b)``; with ``"salient"``, the ``L_b``
        positions of highest ``idf(x_i) - salience_position * i / |x|`` in their order."""
        steps = torch.arange(int(summary_lengths.max()), device=lengths.device)[None]
        if self.config.copy_target == "lead":
            return steps.expand(len(lengths), -1)
        if self.config.copy_target == "spread":
            spread = torch.floor((steps + 0.5) * lengths[:, None].float() / summary_lengths[:, None].float()).long()
            return torch.minimum(spread, (lengths - 1)[:, None])
        return salient_positions(self.idf, tokens, lengths, summary_lengths, self.config.salience_position, self.continues)

    def copy_step(self, tokens, lengths, summary_lengths, encoded=None) -> ModelOutput:
        """Pre-training (Wang & Lee): the compressor, teacher-forced, learns to emit the copy target's words
        (the text's first L_b, or L_b spread over it); the extractor learns to pick their positions."""
        positions = self.copy_positions(tokens, lengths.to(tokens.device), summary_lengths.to(tokens.device))
        targets = positions if isinstance(self.compressor, Extractor) else tokens.gather(1, positions)
        _, log_prob = self.compressor(tokens, lengths, summary_lengths, "teacher", targets=targets, encoded=encoded)
        loss = -log_prob.sum() / summary_lengths.sum()
        return ModelOutput(loss, {"copy_nll": loss.detach()})

    def readability_logits(self, words, summary_lengths) -> torch.Tensor:
        """The discriminator's logits: ``(B,)``, or ``(B, L)`` with per-word scores."""
        return self.discriminator(words, summary_lengths, per_word=self.config.discriminator_scores == "word")

    def fool_loss(self, words, summary_lengths) -> torch.Tensor:
        """``-log D(y)``, averaged over the summaries (or over their words, with per-word scores)."""
        loss = F.softplus(-self.readability_logits(words, summary_lengths))
        return loss.mean() if loss.dim() == 1 else masked_mean(loss, self.valid(summary_lengths, loss.shape[1]))

    def prior_kl(self, words, logp, summary_lengths) -> torch.Tensor:
        """SEQ^3's prior loss: ``KL(p(. | y_<t, x) || p_LM(. | y_<t))`` averaged over the summary words;
        the LM reads the emitted (straight-through) words, so the gradient also reaches them."""
        lm = self.prior.next_log_probs(words)[:, :-1]  # position t: word t given BOS and the words before
        kl = (logp.exp() * (logp.masked_fill(torch.isinf(logp), 0.0) - lm)).sum(-1)  # (B, L)
        return masked_mean(kl, self.valid(summary_lengths, words.shape[1]))

    def prior_score(self, words, summary_lengths) -> torch.Tensor:
        """The mean ``log p_LM(y_t | y_<t)`` of each summary's words ``(B,)`` (ids or one-hots)."""
        lm = self.prior.next_log_probs(words)[:, :-1]
        ids = words if words.dim() == 2 else words.argmax(-1)
        valid = self.valid(summary_lengths, ids.shape[1])
        return (lm.gather(-1, ids[..., None])[..., 0] * valid).sum(1) / valid.sum(1).clamp_min(1)

    def topic_distance(self, words, summary_lengths, tokens, lengths) -> torch.Tensor:
        """SEQ^3's topic loss per example ``(B,)``: ``1 - cos(sum_i idf(x_i) e(x_i) / sum_i idf(x_i), same over
        the summary's words)`` with the compressor's word embeddings ``e`` (one-hot summaries: their idf and
        embedding rows through the one-hots, so the gradient reaches the words)."""
        table = self.embedding.weight
        text_weights = self.idf[tokens] * self.valid(lengths.to(tokens.device), tokens.shape[1])
        text = (text_weights[..., None] * table[tokens]).sum(1) / text_weights.sum(1, keepdim=True).clamp_min(1e-6)
        one_hot = words if words.dim() == 3 else F.one_hot(words, table.shape[0]).float()
        weights = (one_hot @ self.idf) * self.valid(summary_lengths, one_hot.shape[1])
        summary = (weights[..., None] * (one_hot @ table)).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)
        return 1.0 - F.cosine_similarity(text, summary, dim=-1)

    def gumbel_step(self, tokens, lengths, summary_lengths, encoded=None) -> ModelOutput:
        out = self.compressor(tokens, lengths, summary_lengths, "gumbel", self.config.tau,
                              distributions=self.prior is not None, encoded=encoded)
        words, logp = out[0], out[-1]  # logp: every step's distribution, with the prior
        words = words * self.valid(summary_lengths, words.shape[1])[..., None]
        nll, right = self.reconstruction(words, summary_lengths, tokens, lengths)
        recon = nll.sum() / lengths.sum()
        loss, metrics = recon, {"nll": recon.detach(), "accuracy": (right.sum() / lengths.sum()).detach()}
        if self.discriminator is not None:
            fool = self.fool_loss(words, summary_lengths)
            loss = loss + self.config.readability_weight * fool
            metrics["fool_loss"] = fool.detach()
        if self.prior is not None:
            kl = self.prior_kl(words, logp, summary_lengths)
            loss = loss + self.config.lm_weight * kl
            metrics["prior_kl"] = kl.detach()
        if self.config.topic_weight:
            topic = self.topic_distance(words, summary_lengths, tokens, lengths).mean()
            loss = loss + self.config.topic_weight * topic
            metrics["topic_loss"] = topic.detach()
        metrics["summary_length"] = summary_lengths.float().mean()
        return ModelOutput(loss, metrics)

    def reward(self, words, summary_lengths, tokens, lengths):
        """``R = -NLL(x | y) / |x| + w_r log D(y) + w_lm mean_t log p_LM(y_t | y_<t)`` per example ``(B,)``
        (the terms of the readability chosen); with per-word scores the ``D`` term is per word instead,
        ``G_t = w_r mean_{t' >= t} log D(y_<=t')`` ``(B, L)`` (the words from ``t`` on), else zeros.
        Also the NLL and right guesses."""
        nll, right = self.reconstruction(words, summary_lengths, tokens, lengths)
        reward = -nll / lengths.to(nll.device)
        valid = self.valid(summary_lengths, words.shape[1]).float()
        per_word = torch.zeros_like(valid)
        if self.discriminator is not None:
            scores = F.logsigmoid(self.readability_logits(words, summary_lengths))
            if scores.dim() == 1:
                reward = reward + self.config.readability_weight * scores
            else:  # the mean of the scores from each word on: reversed cumulative sums
                ahead = (scores * valid).flip(1).cumsum(1).flip(1) / valid.flip(1).cumsum(1).flip(1).clamp_min(1)
                per_word = self.config.readability_weight * ahead * valid
        if self.prior is not None:
            reward = reward + self.config.lm_weight * self.prior_score(words, summary_lengths)
        if self.config.topic_weight:
            reward = reward - self.config.topic_weight * self.topic_distance(words, summary_lengths, tokens, lengths)
        return reward, per_word, nll, right

    def reinforce_step(self, tokens, lengths, summary_lengths, encoded=None) -> ModelOutput:
        sampled, log_prob = self.compressor(tokens, lengths, summary_lengths, "sample", encoded=encoded)
        sampled = sampled * self.valid(summary_lengths, sampled.shape[1])
        reward, per_word, nll, right = self.reward(sampled, summary_lengths, tokens, lengths)
        with torch.no_grad():
            greedy, _ = self.compressor(tokens, lengths, summary_lengths, "greedy", encoded=encoded)
            greedy = greedy * self.valid(summary_lengths, greedy.shape[1])
            baseline, greedy_per_word, _, _ = self.reward(greedy, summary_lengths, tokens, lengths)
        advantage = ((reward - baseline)[:, None] + per_word - greedy_per_word).detach()  # (B, L): each word's credit
        policy = -(advantage * log_prob).sum(1).mean()
        recon = nll.sum() / lengths.sum()
        metrics = {"nll": recon.detach(), "accuracy": (right.sum() / lengths.sum()).detach(), "reward": reward.mean().detach(),
                   "baseline": baseline.mean(), "summary_length": summary_lengths.float().mean()}
        return ModelOutput(recon + policy, metrics)

    def discriminator_step(self, batch, tokens, lengths, summary_lengths) -> ModelOutput:
        """Binary cross-entropy: real readable sentences 1, the compressor's summaries 0."""
        with torch.no_grad():
            mode = "gumbel" if self.config.through_words == "gumbel" else "sample"
            fake, _ = self.compressor(tokens, lengths, summary_lengths, mode, self.config.tau)
            fake = fake.argmax(-1) if fake.dim() == 3 else fake
            fake = fake * self.valid(summary_lengths, fake.shape[1])
        word = self.config.discriminator_scores == "word"  # every prefix judged
        real = self.discriminator(batch["readable"], batch["readable_lengths"], per_word=word)
        made = self.discriminator(fake, summary_lengths, per_word=word)
        weights = [torch.ones_like(real), torch.ones_like(made)]
        if word:
            weights = [self.valid(batch["readable_lengths"], real.shape[1]).float(), self.valid(summary_lengths, made.shape[1]).float()]
        loss = masked_mean(F.softplus(-real), weights[0]) + masked_mean(F.softplus(made), weights[1])
        accuracy = (masked_mean((real > 0).float(), weights[0]) + masked_mean((made < 0).float(), weights[1])) / 2
        return ModelOutput(loss, {"loss": loss.detach(), "accuracy": accuracy.detach()})

    @staticmethod
    def valid(summary_lengths: torch.Tensor, steps: int) -> torch.Tensor:
        return (torch.arange(steps, device=summary_lengths.device)[None] < summary_lengths[:, None]).long()
