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
    which makes the vectors of one speaker's utterances agree).
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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from seqae.audio import MelConfig, harmonic_templates, nearest_smoothers, on_cpu, pitch_adaptive_smoothers, smoother_grid
from seqae.config import ConfigError, choice
from seqae.models.base import ModelOutput, Phase, Stage, single_stage
from seqae.nn.norm import AdaIN, instance_norm, masked_mean


@dataclass
class VoiceConversionConfig:
    """``[model]`` for ``family = "voice_conversion"``."""

    family: str = "voice_conversion"
    method: str = choice("adain", "adain", "adversarial")
    input_dim: int = 0  # mel bands; 0: from data.n_mels
    channels: int = 256
    blocks: int = 4  # residual convolution blocks in each encoder and in the decoder
    kernel_size: int = 5
    content_dim: int = 64
    speaker_dim: int = 128
    # how the speaker encoder pools its frames into one vector: "mean", or "mean_std" (the mean and the
    # standard deviation of each channel over time, the statistics pooling of x-vector speaker encoders)
    speaker_pooling: str = choice("mean", "mean", "mean_std")
    instance_norm: bool = True  # in the content encoder and on the content code (false: an ablation)
    # what the content encoder sees: "mel", the whole log-mel; or "envelope", its first
    # envelope_coefficients DCT coefficients along the mel axis (a cepstrum: the spectral envelope, where
    # the words are, without the harmonic ripple, where the source's pitch is)
    content_input: str = choice("mel", "mel", "envelope")
    envelope_coefficients: int = 20  # also the size of the decoder's envelope with pitch = "source_filter"
    # adain: the decoder also takes the source's pitch contour (YIN, octaves re 100 Hz, one value per frame),
    # moved to the reference's pitch level, so the target's pitch level is given rather than inferred:
    # "none"; "contour", as one more input channel; "harmonics", as the log-mel of a flat harmonic series
    # at that pitch (seqae.audio.harmonic_templates), an input to the decoder and added to its output
    # through a learned 1x1 convolution (the excitation's fine structure, which the spectral envelope
    # from the content and speaker codes multiplies); "source_filter", the same templates, but the
    # decoder's own output is smoothed to its first envelope_coefficients DCT coefficients along the mel
    # axis (a spectral envelope with no harmonic ripple) and the only fine structure is the templates'
    # with a learned gain per band, scaled per frame by a voicing gain in (0, 1) that the decoder
    # predicts: the speaker code then shapes the envelope and cannot move the pitch
    pitch: str = choice("none", "none", "contour", "harmonics", "source_filter")
    # how pitch = "source_filter" smooths the decoder's envelope along the mel axis: "cepstral", its first
    # envelope_coefficients DCT coefficients (one resolution for every band and every pitch); or
    # "pitch_adaptive", a triangle of half-width f0 in Hz at each frame's pitch (the contour's), which
    # removes the ripple of that pitch and keeps every finer detail the harmonics allow, in the high bands
    # all of it (seqae.audio.pitch_adaptive_smoothers)
    envelope_smoothing: str = choice("cepstral", "cepstral", "pitch_adaptive")
    # pitch_adaptive: the triangle's half-width is never narrower than this (Hz); at the corpus's highest
    # pitch, every frame is smoothed alike and the envelope cannot carry anything pitch-specific
    envelope_min_width: float = 0.0
    variational: bool = True  # Gaussian content code with a KL term
    kl_weight: float = 0.1
    kl_anneal_steps: int = 1000  # the KL weight ramps linearly from 0 over this many training forward passes (steps x grad_accum)
    speakers: list[str] = field(default_factory=list)  # the training speakers; filled from the data
    adversary_weight: float = 0.1  # adversarial: weight of the encoder's confusion loss
    # adain: weight of a speaker-classification loss on the speaker vector (a linear classifier over the
    # training speakers); 0 turns it off (the paper's AdaIN-VC)
    speaker_loss_weight: float = 0.0
    adversary_hidden: int = 256

    def validate(self, where: str) -> None:
        for name in ("channels", "blocks", "kernel_size", "content_dim", "speaker_dim", "adversary_hidden", "envelope_coefficients"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}: model.{name} must be positive, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}: model.kernel_size must be odd (frames stay aligned), got {self.kernel_size}")
        if self.pitch != "none" and self.method != "adain":
            raise ConfigError(
                f'{where}: model.pitch needs method = "adain" (the target\'s pitch level comes from its reference utterances)'
            )
        if self.envelope_min_width < 0:
            raise ConfigError(f"{where}: model.envelope_min_width must be >= 0 (Hz), got {self.envelope_min_width}")
        if self.envelope_smoothing != "cepstral" and self.pitch != "source_filter":
            raise ConfigError(f"{where}: model.envelope_smoothing = \"{self.envelope_smoothing}\" needs model.pitch = \"source_filter\"")
        if min(self.kl_weight, self.kl_anneal_steps, self.adversary_weight, self.speaker_loss_weight) < 0:
            raise ConfigError(f"{where}: model.kl_weight, kl_anneal_steps, adversary_weight and speaker_loss_weight must be >= 0")


def _mask_out(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask[:, None, :].to(x.dtype)


@on_cpu
def envelope_dct(config: VoiceConversionConfig) -> torch.Tensor:
    """``(n_mels, envelope_coefficients)``: the orthonormal DCT-II along the mel axis, as for MFCCs; its
    first coefficients are the spectral envelope."""
    if config.envelope_coefficients > config.input_dim:
        raise ValueError(f"model.envelope_coefficients = {config.envelope_coefficients} is more than the {config.input_dim} mel bands")
    return torchaudio.functional.create_dct(config.envelope_coefficients, config.input_dim, "ortho")


class ContentEncoder(nn.Module):
    """Mel ``(B, n_mels, T)`` -> content mean and log-variance ``(B, content_dim, T)``."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        self.norm = config.instance_norm
        inputs = config.input_dim
        self.envelope: torch.Tensor | None
        if config.content_input != "envelope":
            self.envelope = None
        else:  # not saved (rebuilt from the config)
            self.register_buffer("envelope", envelope_dct(config), persistent=False)
            inputs = config.envelope_coefficients
        self.inp = nn.Conv1d(inputs, c, 1)
        self.convs = nn.ModuleList(nn.ModuleList([nn.Conv1d(c, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)])
                                   for _ in range(config.blocks))
        self.mean = nn.Conv1d(c, config.content_dim, 1)
        self.log_var = nn.Conv1d(c, config.content_dim, 1) if config.variational else None
        if self.log_var is not None:
            # small at the start: an unscaled head sends exp(log_var) and the KL term through the roof
            with torch.no_grad():
                self.log_var.weight.mul_(0.1)
                self.log_var.bias.zero_()

    def _n(self, x, mask):
        return instance_norm(x, mask) if self.norm else _mask_out(x, mask)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.envelope is not None:
            mel = torch.einsum("bmt,mc->bct", mel, self.envelope)
        h = _mask_out(self.inp(mel), mask)
        for conv1, conv2 in self.convs:
            y = F.relu(self._n(conv1(h), mask))
            y = F.relu(self._n(conv2(y), mask))
            h = h + y
        mean = self._n(self.mean(h), mask)
        log_var = None if self.log_var is None else _mask_out(self.log_var(h).clamp(-8.0, 2.0), mask)
        return mean, log_var


class SpeakerEncoder(nn.Module):
    """Mel ``(B, n_mels, T)`` -> one speaker vector ``(B, speaker_dim)`` (pooled over the real frames:
    each channel's mean, or its mean and standard deviation)."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        self.inp = nn.Conv1d(config.input_dim, c, 1)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(config.blocks))
        self.with_std = config.speaker_pooling == "mean_std"
        self.out = nn.Linear(2 * c if self.with_std else c, config.speaker_dim)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(_mask_out(self.inp(mel), mask))
        for conv in self.convs:
            h = h + F.relu(_mask_out(conv(h), mask))
        mean = masked_mean(h, mask)
        if not self.with_std:
            return self.out(mean)
        spread = (masked_mean(h.pow(2), mask) - mean.pow(2)).clamp_min(1e-6).sqrt()
        return self.out(torch.cat([mean, spread], dim=1))


class Decoder(nn.Module):
    """Content ``(B, content_dim, T)`` and speaker ``(B, speaker_dim)`` -> mel ``(B, n_mels, T)``; with
    ``pitch``, the content carries one more channel, the pitch contour, or the harmonic templates; with
    ``envelope_smoothing = "pitch_adaptive"``, ``smoothing`` ``(B, T, n_mels, n_mels)`` holds each frame's
    smoothing matrix."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        c, k = config.channels, config.kernel_size
        extra = {"none": 0, "contour": 1, "harmonics": config.input_dim, "source_filter": config.input_dim}[config.pitch]
        self.inp = nn.Conv1d(config.content_dim + extra, c, 1)
        self.excitation: nn.Conv1d | None = None
        self.source_filter = config.pitch == "source_filter"
        smooth = None
        if config.pitch == "harmonics":  # a learned mixing of the templates' bands
            self.excitation = nn.Conv1d(config.input_dim, config.input_dim, 1)
        elif config.pitch == "source_filter":  # one gain per band: each band's ripple stays where the template puts it
            self.excitation = nn.Conv1d(config.input_dim, config.input_dim, 1, groups=config.input_dim)
            nn.init.constant_(self.excitation.weight, 0.25)  # about one nat in the normalised log-mel's units
            nn.init.zeros_(self.excitation.bias)
            if config.envelope_smoothing == "cepstral":
                dct = envelope_dct(config)
                smooth = dct @ dct.T  # (n_mels, n_mels): projection onto the first K cepstral coefficients
        self.smooth: torch.Tensor | None
        self.register_buffer("smooth", smooth, persistent=False)  # not saved (rebuilt from the config)
        self.convs = nn.ModuleList(nn.ModuleList([nn.Conv1d(c, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)])
                                   for _ in range(config.blocks))
        self.adains = nn.ModuleList(nn.ModuleList([AdaIN(c, config.speaker_dim), AdaIN(c, config.speaker_dim)])
                                    for _ in range(config.blocks))
        self.out = nn.Conv1d(c, config.input_dim + self.source_filter, 1)  # source_filter: + the voicing gain

    def forward(self, content: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor | None = None,
                smoothing: torch.Tensor | None = None) -> torch.Tensor:
        h = _mask_out(self.inp(content), mask)
        for (conv1, conv2), (ada1, ada2) in zip(self.convs, self.adains):
            y = F.relu(ada1(conv1(h), speaker, mask))
            y = F.relu(ada2(conv2(y), speaker, mask))
            h = h + y
        out = self.out(h)
        if self.excitation is not None:
            n_mels = self.excitation.in_channels
            fine = self.excitation(content[:, -n_mels:])  # the harmonic templates are the input's last n_mels channels
            if not self.source_filter:  # harmonics: added to the output
                out = out + fine
            else:  # source_filter: a smooth envelope plus the templates, gated per frame
                if self.smooth is not None:
                    envelope = torch.einsum("mn,bnt->bmt", self.smooth.to(out.dtype), out[:, :n_mels])
                elif smoothing is None:
                    raise ValueError("envelope_smoothing = \"pitch_adaptive\": give each frame's smoothing matrix "
                                     "(VoiceConversion.smoothing)")
                else:
                    envelope = torch.einsum("btmn,bnt->bmt", smoothing.to(out.dtype), out[:, :n_mels])
                out = envelope + torch.sigmoid(out[:, n_mels:]) * fine
        return _mask_out(out, mask)


class SpeakerClassifier(nn.Module):
    """The adversary: content code ``(B, content_dim, T)`` -> speaker logits ``(B, speakers)``."""

    def __init__(self, config: VoiceConversionConfig):
        super().__init__()
        h, k = config.adversary_hidden, config.kernel_size
        self.conv1 = nn.Conv1d(config.content_dim, h, k, padding=k // 2)
        self.conv2 = nn.Conv1d(h, h, k, padding=k // 2)
        self.out = nn.Linear(h, len(config.speakers))

    def forward(self, content: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(_mask_out(self.conv1(content), mask))
        h = F.relu(_mask_out(self.conv2(h), mask))
        return self.out(masked_mean(h, mask))


PITCH_STEP = 1.0 / 96  # octaves between neighbouring harmonic templates (an eighth of a semitone)


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

    def harmonics(self, pitch: torch.Tensor) -> torch.Tensor:
        """Contour ``(B, T)`` (octaves re 100 Hz) -> harmonic templates ``(B, n_mels, T)``, interpolated
        between the table's pitches (clamped to 40..1000 Hz)."""
        position = ((pitch.float() - self.template_start) / PITCH_STEP).clamp(0, self.templates.shape[0] - 1)
        low = position.floor().long().clamp(max=self.templates.shape[0] - 2)
        weight = (position - low)[..., None]
        rows = self.templates[low] * (1 - weight) + self.templates[low + 1] * weight  # (B, T, n_mels)
        return rows.transpose(1, 2)

    def smoothing(self, pitch: torch.Tensor) -> torch.Tensor:
        """Contour ``(B, T)`` -> each frame's pitch-adaptive smoothing matrix ``(B, T, n_mels, n_mels)``
        (the nearest of the table's pitches, clamped to 40..1000 Hz)."""
        return nearest_smoothers(self.smoothers, self.smoother_start, pitch)

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

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """``batch``: ``x`` ``(B, n_mels, T)`` and ``mask`` ``(B, T)``; ``ref``/``ref_mask`` (another
        utterance of the same speaker, ``adain``); ``speaker`` ``(B,)`` indices into ``model.speakers``;
        ``pitch`` ``(B, T)`` with ``model.pitch`` (the segment's contour at the reference's level)."""
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
        recon = self._decode(_mask_out(content, mask), speaker, batch.get("pitch"), mask)
        frames = mask[:, None, :].to(x.dtype)
        denominator = frames.sum() * x.shape[1]
        l1 = ((recon - x).abs() * frames).sum() / denominator
        metrics: dict[str, float | torch.Tensor] = {"l1": l1.detach()}
        loss = l1
        if log_var is not None:
            kl = (0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var) * frames).sum() / (frames.sum() * mean.shape[1])
            weight = self.kl_weight()
            loss = loss + weight * kl
            metrics.update(kl=kl.detach(), kl_weight=weight)
        if self.config.method == "adain" and self.config.speaker_loss_weight > 0:
            logits = self.speaker_head(speaker)
            speaker_loss = F.cross_entropy(logits, batch["speaker"])
            loss = loss + self.config.speaker_loss_weight * speaker_loss
            accuracy = (logits.argmax(1) == batch["speaker"]).float().mean()
            metrics.update(speaker_loss=speaker_loss.detach(), speaker_accuracy=accuracy.detach())
        if self.config.method == "adversarial":
            logits = self.adversary(mean, mask)
            confusion = -F.log_softmax(logits, dim=1).mean()  # cross-entropy against the uniform distribution
            loss = loss + self.config.adversary_weight * confusion
            metrics["confusion"] = confusion.detach()
        if self.training:
            self.updates += 1
        return ModelOutput(loss, metrics)
