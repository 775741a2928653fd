"""``[model]`` for ``family = "voice_conversion"``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from seqae.config import ConfigError, choice
from seqae.datasets.audio import AudioDataConfig


@dataclass
class VoiceDataConfig(AudioDataConfig):
    """``[data]`` for ``family = "voice_conversion"``: the audio settings and the training-time augmentation."""

    # vocal-tract-length perturbation: each training example (its window and its reference windows alike,
    # so they stay one voice) has its mel axis stretched by a factor drawn uniformly from
    # [1 - vtlp_warp, 1 + vtlp_warp] (seqae.audio.vocal_tract_warp), its pitch contour moved with it:
    # voices between and beyond the corpus's. 0 turns it off; 0.1 to 0.2 is the usual range
    vtlp_warp: float = 0.0
    # new speakers made once from the training utterances (seqae.datasets.augment): one copy of every
    # training utterance per factor, resampled to play that many times faster (pitch, formants and tempo
    # move together: [0.9, 1.1] is Kaldi's speed perturbation), a speaker of its own ("p1@speed0.9")
    speed_perturb: list[float] = field(default_factory=list)
    # the same with the pitch moved by this many semitones, duration and formants kept ("p1@pitch+3")
    pitch_shift: list[float] = field(default_factory=list)
    # a random smooth equaliser on each training example (window, references and target alike, as part of
    # the voice), its peak gain drawn uniformly up to this many dB; 0 turns it off
    equalise_db: float = 0.0
    # [low, high]: white or pink noise mixed into each training example's inputs (its window as the
    # content encoder sees it, and its references) at an SNR drawn uniformly in [low, high] dB; the
    # reconstruction target stays clean, so the encoders learn to ignore the noise. [] turns it off
    noise_snr: list[float] = field(default_factory=list)
    # the share of training examples whose window, as the content encoder sees it, is whispered: its
    # spectral envelope kept, the harmonic source replaced by noise with whisper's flatter tilt, the pitch
    # contour flat (seqae.datasets.augment.whisper); the clean window stays the target. Meant to teach the
    # content code to read whispered sources; at 0.25 it did not (docs/RESULTS.md). 0 turns it off
    whisper: float = 0.0

    def validate(self, where: str) -> None:
        super().validate(where)
        if not 0.0 <= self.vtlp_warp < 0.5:
            raise ConfigError(f"{where}: data.vtlp_warp must be in [0, 0.5) (a share of the frequency axis), got {self.vtlp_warp}")
        if any(not 0.5 <= f <= 2.0 or f == 1.0 for f in self.speed_perturb):
            raise ConfigError(f"{where}: data.speed_perturb factors must be in [0.5, 2] and not 1 (the corpus itself), "
                              f"got {self.speed_perturb}")
        if any(not -12.0 <= s <= 12.0 or s == 0.0 for s in self.pitch_shift):
            raise ConfigError(f"{where}: data.pitch_shift must be semitones in [-12, 12] and not 0, got {self.pitch_shift}")
        if len(set(self.speed_perturb)) < len(self.speed_perturb) or len(set(self.pitch_shift)) < len(self.pitch_shift):
            raise ConfigError(f"{where}: data.speed_perturb and data.pitch_shift must not repeat a value")
        if not 0.0 <= self.equalise_db <= 30.0:
            raise ConfigError(f"{where}: data.equalise_db must be in [0, 30] (the equaliser's peak gain, dB), got {self.equalise_db}")
        if self.noise_snr and (len(self.noise_snr) != 2 or self.noise_snr[0] > self.noise_snr[1]
                               or not all(math.isfinite(v) for v in self.noise_snr)):
            raise ConfigError(f"{where}: data.noise_snr must be [low, high] in dB with low <= high (or [] for no noise), "
                              f"got {self.noise_snr}")
        if not 0.0 <= self.whisper <= 1.0:
            raise ConfigError(f"{where}: data.whisper must be a share of the training examples in [0, 1], got {self.whisper}")

    def augments(self) -> bool:
        """Whether any per-example augmentation is on (the waveform copies are made in ``prepare``)."""
        return bool(self.vtlp_warp or self.equalise_db or self.noise_snr or self.whisper)


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
    kl_weight: float = 0.1  # 0.03 reconstructs better but converts no better (docs/RESULTS.md, wide voices)
    kl_anneal_steps: int = 1000  # the KL weight ramps linearly from 0 over this many training forward passes (steps x grad_accum)
    speakers: list[str] = field(default_factory=list)  # the training speakers; filled from the data
    adversary_weight: float = 0.1  # adversarial: weight of the encoder's confusion loss
    # adain: weight of a speaker-classification loss on the speaker vector (a linear classifier over the
    # training speakers); 0 turns it off (the paper's AdaIN-VC)
    speaker_loss_weight: float = 0.0
    # weight of a content-consistency loss: on a parallel corpus (the same text said by several training
    # speakers), the squared distance between the content codes of DTW-aligned frames of one sentence said
    # by two speakers (seqae.families.voice_conversion.parallel), so that the content code reads the words
    # alike whatever the voice; 0 turns it off (at 1 it lowered the phone ratio; the contrastive form at 0.1
    # raised it among training-like sources and lowered it from held-out ones: docs/RESULTS.md)
    content_consistency_weight: float = 0.0
    # its form: "squared", the squared distance above; or "contrastive", InfoNCE: each frame's code must pick
    # out its aligned partner frame among the partner window's other frames (cosine similarity / temperature;
    # the aligned frame's two neighbours on each side are left out, the alignment being off by a frame or so),
    # which a blurred code cannot do, so the code keeps what tells the frames (the phones) apart
    content_consistency: str = choice("squared", "squared", "contrastive")
    content_consistency_temperature: float = 0.1
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
        if min(self.kl_weight, self.kl_anneal_steps, self.adversary_weight, self.speaker_loss_weight, self.content_consistency_weight) < 0:
            raise ConfigError(f"{where}: model.kl_weight, kl_anneal_steps, adversary_weight, speaker_loss_weight and "
                              "content_consistency_weight must be >= 0")
        if self.content_consistency_temperature <= 0:
            raise ConfigError(f"{where}: model.content_consistency_temperature must be positive, got "
                              f"{self.content_consistency_temperature}")
