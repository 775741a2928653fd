"""Voice conversion by speaker/content disentangling, on normalised log-mel spectrograms.

Two methods, chosen by ``model.method``:

``adain`` (AdaIN-VC, Chou et al. 2019, arXiv 1904.05742)
    A content encoder whose instance normalisation (no affine parameters) removes each channel's
    per-utterance mean and spread, which carry the speaker; the content code itself is instance
    normalised too, and with ``variational = true`` it is the mean of a Gaussian whose sample feeds the
    decoder (KL to N(0, I), weight ramped from 0 over ``kl_anneal_steps``). A speaker encoder pools over
    time to one vector. The decoder's AdaIN layers take their scale and shift from that vector. Trained
    to reconstruct a segment from its own content and the speaker vector of a *different* utterance of
    the same speaker (the batch's ``ref``), so the speaker path cannot carry content. Loss: L1 + KL
    (+ ``speaker_loss_weight`` x the cross-entropy of a linear speaker classifier on the speaker vector,
    which makes the vectors of one speaker's utterances agree; + ``content_consistency_weight`` x the
    distance between the content codes of DTW-aligned frames of one sentence said by two speakers, or an
    InfoNCE loss between them, on a parallel corpus: :mod:`seqae.families.voice_conversion.parallel`).
    Converts to any speaker, seen in training or not, from one utterance (one-shot).

``adversarial`` (after Chou et al. 2018, arXiv 1804.02812)
    The same content encoder; a speaker classifier learns to name the speaker from the content code,
    and the encoder is trained to leave it at chance (cross-entropy against the uniform distribution),
    in alternating steps through the Trainer's phase hook (phases ``adversary`` then ``model``). The
    decoder takes a learned embedding of the training speaker, so it converts to training speakers only.

Shapes: mels ``(batch, n_mels, frames)``, masks ``(batch, frames)`` (True on real frames), content codes
``(batch, content_dim, frames)`` (one per input frame: no down-sampling, so a converted utterance keeps
the source's timing), speaker codes ``(batch, speaker_dim)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqae.audio import FrameSmoothers, MelConfig, harmonic_templates, nearest_rows, pitch_adaptive_smoothers, smoother_grid
from seqae.families.voice_conversion.config import VoiceConversionConfig
from seqae.families.voice_conversion.parts import ContentEncoder, Decoder, SpeakerClassifier, SpeakerEncoder, mask_out
from seqae.models.base import ModelOutput, Phase, Stage, single_stage
from seqae.nn.losses import gaussian_kl_terms

__all__ = ["VoiceConversion", "VoiceConversionConfig", "ContentEncoder", "Decoder", "SpeakerClassifier", "SpeakerEncoder"]

PITCH_STEP = 1.0 / 96  # octaves between neighbouring harmonic templates (an eighth of a semitone)


NEIGHBOURS = 2  # aligned_contrast: frames this near the aligned one are neither positive nor negative


def aligned_contrast(codes: torch.Tensor, partner: torch.Tensor, index: torch.Tensor, mask: torch.Tensor,
                     partner_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE between aligned frames: for each frame of ``codes`` ``(B, C, T)`` whose ``index`` ``(B, T)``
    names its aligned frame in ``partner`` ``(B, C, S)`` (-1: none), the cross-entropy of picking that frame
    among the partner window's real frames (``partner_mask`` ``(B, S)``) by cosine similarity / ``temperature``,
    the aligned frame's :data:`NEIGHBOURS` neighbours on each side left out (they share its phone, and DTW
    may be off by one). Averaged over the frames of ``mask`` ``(B, T)`` that have a partner; 0 when none do."""
    logits = torch.einsum("bct,bcs->bts", F.normalize(codes, dim=1), F.normalize(partner, dim=1)) / temperature
    target = index.clamp(min=0)
    offset = (torch.arange(partner.shape[2], device=codes.device)[None, None, :] - target[:, :, None]).abs()
    shut = ((offset > 0) & (offset <= NEIGHBOURS)) | ~partner_mask[:, None, :]
    logits = logits.masked_fill(shut, float("-inf"))
    valid = (index >= 0) & mask & partner_mask.gather(1, target)
    if not valid.any():
        return codes.sum() * 0.0
    return F.cross_entropy(logits[valid], target[valid])


class VoiceConversion(nn.Module):
    """``mel``: the run's mel settings, needed with ``pitch = "harmonics"`` (the templates are analysed
    with them)."""

    def __init__(self, config: VoiceConversionConfig, mel: MelConfig | None = None):
        super().__init__()
        if config.input_dim <= 0:
            raise ValueError("VoiceConversionConfig.input_dim must be set (the number of mel bands)")
        self.templates: torch.Tensor | None
        if config.envelope_smoothing != "cepstral" and config.pitch != "source_filter":
            raise ValueError(f"envelope_smoothing = \"{config.envelope_smoothing}\" needs pitch = \"source_filter\"")
        if config.pitch not in ("harmonics", "source_filter"):
            self.templates = None
        else:
            if mel is None or mel.n_mels != config.input_dim:
                raise ValueError(f"pitch = \"{config.pitch}\" needs the run's mel settings (with input_dim bands)")
            # 40 to 1000 Hz; not saved (rebuilt from the mel settings, which are)
            grid = torch.arange(math.log2(0.4), math.log2(10.0) + PITCH_STEP, PITCH_STEP, device="cpu")
            self.register_buffer("templates", harmonic_templates(mel, grid), persistent=False)
            self.template_start = float(grid[0])
        self.smoothers: torch.Tensor | None
        if config.envelope_smoothing != "pitch_adaptive":
            self.smoothers = None
        else:  # (G, n_mels, n_mels), 40 to 1000 Hz on a grid through 100 Hz; not saved either
            grid = smoother_grid(40.0, 1000.0)
            self.register_buffer("smoothers", pitch_adaptive_smoothers(mel, grid, config.envelope_min_width), persistent=False)
            self.smoother_start = float(grid[0])
        if (config.method == "adversarial" or config.speaker_loss_weight > 0) and len(config.speakers) < 2:
            raise ValueError("the adversarial method and the speaker loss need model.speakers: at least 2 training speakers")
        self.config = config
        self.content_encoder = ContentEncoder(config)
        self.decoder = Decoder(config)
        if config.method == "adain":
            self.speaker_encoder = SpeakerEncoder(config)
            if config.speaker_loss_weight > 0:
                self.speaker_head = nn.Linear(config.speaker_dim, len(config.speakers))
        else:
            self.speaker_table = nn.Embedding(len(config.speakers), config.speaker_dim)
            self.adversary = SpeakerClassifier(config)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # training forward passes (KL ramp)
        self.phase = "model"

    # -- the Trainer's hook (adversarial method only) ---------------------------------------------

    def training_stages(self, steps: int) -> list[Stage]:
        if self.config.method != "adversarial":
            return single_stage(self, steps)
        adversary = list(self.adversary.parameters())
        ids = {id(p) for p in adversary}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [Stage("main", steps, [Phase("adversary", adversary), Phase("model", rest)])]

    def set_phase(self, stage: str, phase: str) -> None:
        self.phase = phase

    # -- inference ---------------------------------------------------------------------------------

    def content(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The content code ``(B, content_dim, T)`` (the Gaussian's mean)."""
        return self.content_encoder(mel, mask)[0]

    def speaker_code(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``adain``: the speaker vector ``(B, speaker_dim)`` of reference mels."""
        if self.config.method != "adain":
            raise ValueError("the adversarial method has no speaker encoder; it knows its training speakers by name")
        return self.speaker_encoder(mel, mask)

    def speaker_index(self, name: str) -> int:
        if name not in self.config.speakers:
            raise KeyError(name)
        return self.config.speakers.index(name)

    def target_code(self, references: list[torch.Tensor] | None = None, speaker: str | None = None) -> torch.Tensor:
        """The target's speaker vector ``(1, speaker_dim)``: the mean over reference mels ``(n_mels, T_i)``
        (``adain``), or the learned embedding of a training speaker (``adversarial``)."""
        if self.config.method == "adversarial":
            if speaker is None:
                raise ValueError("the adversarial method converts to a training speaker named by `speaker`")
            index = torch.tensor([self.speaker_index(speaker)], device=self.updates.device)
            return self.speaker_table(index)
        if not references:
            raise ValueError("give at least one reference utterance of the target speaker")
        return torch.cat([self.speaker_encoder(r[None]) for r in references]).mean(0, keepdim=True)

    def adapted_code(self, references: list[torch.Tensor], contours: list[torch.Tensor | None] | None = None,
                     steps: int = 50, rate: float = 0.1) -> torch.Tensor:
        """``adain``: the target's speaker vector ``(1, speaker_dim)`` fitted to its reference mels
        ``(n_mels, T_i)``: the speaker encoder's mean code, then ``steps`` Adam steps (learning rate
        ``rate``) on the vector alone, the networks frozen, that lower the L1 error of decoding each
        reference from its own content code (:meth:`reference_error`; its own pitch contour ``(T_i,)`` in
        ``contours``, models trained with ``model.pitch``). Still one-shot: it sees only the references.
        A voice the encoder maps near some training voice gets the vector with which the decoder rebuilds
        it best."""
        code = self.target_code(references).detach()
        if steps <= 0:
            return code
        contours = list(contours) if contours is not None else [None] * len(references)
        if len(contours) != len(references):
            raise ValueError(f"{len(contours)} pitch contours for {len(references)} references")
        batch = self.reference_batch(references, contours)
        code = code.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([code], lr=rate)
        with torch.enable_grad():
            for _ in range(steps):
                (grad,) = torch.autograd.grad(self.reference_error(code, batch).mean(), [code])
                code.grad = grad
                optimiser.step()
        return code.detach()

    @torch.no_grad()
    def reference_batch(self, references: list[torch.Tensor], contours: list[torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """Reference mels ``(n_mels, T_i)`` padded into one batch with their mask, content codes and contours."""
        mels = nn.utils.rnn.pad_sequence([r.T for r in references], batch_first=True).transpose(1, 2)
        lengths = torch.tensor([r.shape[1] for r in references], device=mels.device)
        mask = torch.arange(mels.shape[2], device=mels.device)[None] < lengths[:, None]
        batch = {"x": mels, "mask": mask, "content": mask_out(self.content(mels, mask), mask)}
        if contours[0] is not None:
            batch["pitch"] = nn.utils.rnn.pad_sequence([p.to(mels.device) for p in contours], batch_first=True)
        return batch

    def reference_error(self, code: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(N,)``: each reference's mean L1 error (over its real frames and bands) when decoded from its own
        content code with the speaker vector ``code`` ``(1, speaker_dim)`` (:meth:`reference_batch`'s batch)."""
        mask = batch["mask"]
        decoded = self._decode(batch["content"], code.expand(mask.shape[0], -1), batch.get("pitch"), mask)
        frames = mask[:, None, :].to(decoded.dtype)
        return ((decoded - batch["x"]).abs() * frames).sum((1, 2)) / (frames.sum((1, 2)) * decoded.shape[1])

    def harmonics(self, pitch: torch.Tensor) -> torch.Tensor:
        """Contour ``(B, T)`` (octaves re 100 Hz) -> harmonic templates ``(B, n_mels, T)``, interpolated
        between the table's pitches (clamped to 40..1000 Hz)."""
        position = ((pitch.float() - self.template_start) / PITCH_STEP).clamp(0, self.templates.shape[0] - 1)
        low = position.floor().long().clamp(max=self.templates.shape[0] - 2)
        weight = (position - low)[..., None]
        rows = self.templates[low] * (1 - weight) + self.templates[low + 1] * weight  # (B, T, n_mels)
        return rows.transpose(1, 2)

    def smoothing(self, pitch: torch.Tensor) -> FrameSmoothers:
        """Contour ``(B, T)`` -> each frame's pitch-adaptive smoothing matrix (the nearest of the table's
        pitches, clamped to 40..1000 Hz), as the table and each frame's row of it."""
        return FrameSmoothers(self.smoothers, nearest_rows(self.smoothers, self.smoother_start, pitch))

    def _decode(self, content: torch.Tensor, speaker: torch.Tensor, pitch: torch.Tensor | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder on the content code ``(B, content_dim, T)`` with the pitch the model was trained with."""
        inputs = self._with_pitch(content, pitch)
        smoothing = None if self.smoothers is None else self.smoothing(pitch)
        return self.decoder(inputs, speaker, mask, smoothing)

    def _with_pitch(self, content: torch.Tensor, pitch: torch.Tensor | None) -> torch.Tensor:
        """The decoder's input: the content code, and with ``model.pitch`` the contour ``(B, T)`` as one
        more channel or as harmonic templates (the last ``n_mels`` channels)."""
        if self.config.pitch == "none":
            return content
        if pitch is None:
            raise ValueError(
                "this model was trained with model.pitch: give the source's pitch contour, moved to the target's level "
                "(seqae.audio.track_pitch, pitch_contour and move_pitch)"
            )
        if pitch.shape != (content.shape[0], content.shape[2]):
            expected = (content.shape[0], content.shape[2])
            raise ValueError(f"pitch contour of shape {tuple(pitch.shape)}; expected (batch, frames) = {expected}")
        extra = pitch[:, None, :] if self.config.pitch == "contour" else self.harmonics(pitch)
        return torch.cat([content, extra.to(content.dtype)], dim=1)

    def convert(self, source: torch.Tensor, target: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Source mel ``(B, n_mels, T)`` in the voice of ``target`` ``(B or 1, speaker_dim)`` -> ``(B, n_mels, T)``.
        ``pitch`` ``(B, T)`` (models trained with ``model.pitch`` only): the source's contour moved to the
        target's level (:func:`seqae.audio.move_pitch`)."""
        return self._decode(self.content(source), target.expand(source.shape[0], -1), pitch)

    def reconstruct(self, mel: torch.Tensor, reference: torch.Tensor | None = None, speaker: torch.Tensor | None = None,
                    pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Mel from its own content and the speaker of ``reference`` (``adain``) or index ``speaker``."""
        if self.config.method == "adversarial":
            code = self.speaker_table(speaker)
        else:
            code = self.speaker_encoder(mel if reference is None else reference)
        return self._decode(self.content(mel), code, pitch)

    # -- training ----------------------------------------------------------------------------------

    def kl_weight(self) -> float:
        if self.config.kl_anneal_steps == 0:
            return self.config.kl_weight
        return self.config.kl_weight * min(1.0, float(self.updates) / self.config.kl_anneal_steps)

    def speaker_loss(self, speaker: torch.Tensor, labels: torch.Tensor, metrics: dict) -> torch.Tensor:
        """The weighted cross-entropy of the linear speaker classifier on speaker vectors ``(B, speaker_dim)``
        against their speakers ``(B,)``; its value and accuracy go into ``metrics``."""
        logits = self.speaker_head(speaker)
        speaker_loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        metrics.update(speaker_loss=speaker_loss.detach(), speaker_accuracy=accuracy.detach())
        return self.config.speaker_loss_weight * speaker_loss

    def content_consistency(self, mean: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The content-consistency loss, averaged over the frames that have an aligned partner frame, between
        each frame's content code ``mean`` ``(B, content_dim, T)`` and the content code of its partner's aligned
        frame (batch ``partner``, ``partner_mask``, ``partner_index``:
        :meth:`seqae.families.voice_conversion.data.SpeakerSegments.partner_windows`): the squared distance
        averaged over channels, or with ``content_consistency = "contrastive"`` :func:`aligned_contrast`.
        Both sides are trained."""
        partner, _ = self.content_encoder(batch["partner"], batch["partner_mask"])
        index = batch["partner_index"]
        if self.config.content_consistency == "contrastive":
            return aligned_contrast(mean, partner, index, batch["mask"], batch["partner_mask"],
                                    self.config.content_consistency_temperature)
        valid = ((index >= 0) & batch["mask"]).to(mean.dtype)
        aligned = partner.gather(2, index.clamp(min=0)[:, None, :].expand(-1, partner.shape[1], -1))
        squared = ((mean - aligned) ** 2).mean(1)
        return (squared * valid).sum() / valid.sum().clamp(min=1.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """``batch``: ``x`` ``(B, n_mels, T)`` and ``mask`` ``(B, T)``; ``ref``/``ref_mask`` (another
        utterance of the same speaker, ``adain``); ``speaker`` ``(B,)`` indices into ``model.speakers``;
        ``pitch`` ``(B, T)`` with ``model.pitch`` (the segment's contour at the reference's level);
        optionally ``target`` ``(B, n_mels, T)``, what to reconstruct when it is not ``x`` itself."""
        x, mask = batch["x"], batch["mask"]
        if self.config.method == "adversarial" and self.phase == "adversary":
            with torch.no_grad():
                mean, _ = self.content_encoder(x, mask)
            logits = self.adversary(mean, mask)
            loss = F.cross_entropy(logits, batch["speaker"])
            accuracy = (logits.argmax(1) == batch["speaker"]).float().mean()
            return ModelOutput(loss, {"accuracy": accuracy.detach()})

        mean, log_var = self.content_encoder(x, mask)
        if log_var is not None and self.training:
            content = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        else:
            content = mean
        if self.config.method == "adain":
            speaker = self.speaker_encoder(batch["ref"], batch["ref_mask"])
        else:
            speaker = self.speaker_table(batch["speaker"])
        recon = self._decode(mask_out(content, mask), speaker, batch.get("pitch"), mask)
        frames = mask[:, None, :].to(x.dtype)
        denominator = frames.sum() * x.shape[1]
        target = batch.get("target", x)  # the clean window when the inputs are noisy or whispered (data.noise_snr, whisper)
        l1 = ((recon - target).abs() * frames).sum() / denominator
        metrics: dict[str, float | torch.Tensor] = {"l1": l1.detach()}
        loss = l1
        if log_var is not None:
            kl = (gaussian_kl_terms(mean, log_var) * frames).sum() / (frames.sum() * mean.shape[1])
            weight = self.kl_weight()
            loss = loss + weight * kl
            metrics.update(kl=kl.detach(), kl_weight=weight)
        if self.config.method == "adain" and self.config.speaker_loss_weight > 0:
            loss = loss + self.speaker_loss(speaker, batch["speaker"], metrics)
        if self.config.content_consistency_weight > 0 and "partner" in batch:
            consistency = self.content_consistency(mean, batch)
            loss = loss + self.config.content_consistency_weight * consistency
            metrics["consistency"] = consistency.detach()
        if self.config.method == "adversarial":
            logits = self.adversary(mean, mask)
            confusion = -F.log_softmax(logits, dim=1).mean()  # cross-entropy against the uniform distribution
            loss = loss + self.config.adversary_weight * confusion
            metrics["confusion"] = confusion.detach()
        if self.training:
            self.updates += 1
        return ModelOutput(loss, metrics)
