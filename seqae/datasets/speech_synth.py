"""Offline multi-speaker speech with phone alignments, synthesised by espeak-ng.

espeak-ng is loaded from the ``espeakng-loader`` wheel (``pip install seqae[speech]``; espeak-ng is
GPL-3.0, so it stays an optional extra) and driven through its C API with ctypes. Its phoneme events
carry their audio position, which gives each utterance its phone alignment.

Voices combine English accents (``en-us``, ``en-gb-scotland``, ...) with voice variants (``+m3``,
``+f2``, ``+klatt``, ...) and, when more speakers are asked for, pitch and rate settings. Every speaker
speaks the same sentences, so pairs are parallel. A :class:`Tract` is a variant written for one voice
(formant frequencies, heights and widths, breathiness, roughness, flutter), read by espeak-ng from a
private copy of its data folder.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
import tempfile
import threading
from dataclasses import asdict, astuple, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from seqae.datasets.audio import pcm16_to_float
from seqae.datasets.base import DataError

ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
            "croak", "whisperf", "Andy", "Alvin", "Denis", "Gene", "Jacky", "Lee", "Mario", "Michael", "Mr serious",
            "Tweaky", "aunty", "boris", "edward", "iven", "john", "max", "norbert", "paul", "pablo", "rob", "steph"]
PAUSES = {"_", "_:", "_!", "_^_", "_;", ";", "||", "|", ""}
SILENCE = "sil"

EVENT_PHONEME, EVENT_END, EVENT_MSG_TERMINATED, EVENT_LIST_TERMINATED = 7, 5, 6, 0
RATE, PITCH, RANGE = 1, 3, 4
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1


class EspeakEvent(ctypes.Structure):
    class Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", Id),
    ]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent))


@dataclass(frozen=True)
class Tract:
    """An espeak-ng voice variant of one's own (a ``voices/!v`` file): every formant's frequency ``scale`` %
    of the accent's (a shorter or longer vocal tract), F1 and F2 at ``f1`` and ``f2`` % on their own, the
    formant peaks' ``height`` and bandwidth ``width`` (%), ``breath`` (0..6: noise in the upper formants),
    ``roughness`` (0..4) and ``flutter`` (pitch jitter, 0..20)."""

    scale: int
    f1: int
    f2: int
    height: int
    width: int
    breath: int
    roughness: int
    flutter: int

    @property
    def name(self) -> str:
        """``tract`` and six hex digits of the settings (espeak-ng keeps a variant's name in a short buffer)."""
        return "tract" + hashlib.sha1(repr(astuple(self)).encode()).hexdigest()[:6]

    def voice_file(self) -> str:
        frequencies = [100, self.f1, self.f2] + [self.scale] * 6  # formant 0 is the voicing's low hump
        lines = ["language variant", f"name {self.name}", f"gender {'female' if self.scale >= 105 else 'male'}"]
        lines += [f"formant {k} {f} {self.height} {self.width}" for k, f in enumerate(frequencies)]
        breath = [0, 0] + [self.breath] * 6
        lines += [f"breath {' '.join(map(str, breath))}", f"roughness {self.roughness}", f"flutter {self.flutter}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Tract:
        scale = int(rng.integers(80, 126))
        return cls(scale, scale + int(rng.integers(-10, 11)), scale + int(rng.integers(-10, 11)), int(rng.integers(60, 141)),
                   int(rng.integers(70, 181)), int(rng.integers(0, 7)) * int(rng.random() < 0.5), int(rng.integers(0, 5)),
                   int(rng.integers(0, 21)))


@dataclass(frozen=True)
class Voice:
    name: str  # e.g. "en-us+f2"
    pitch: int = 50  # espeak 0..100
    rate: int = 175  # words per minute
    range: int = 50  # pitch range (intonation width), espeak 0..100
    tract: Tract | None = None  # the variant file of a name "accent+tract..." (Espeak writes it)

    @property
    def label(self) -> str:
        spread = "" if self.range == 50 else f"_g{self.range}"
        return f"{self.name.replace('+', '_').replace(' ', '-')}_p{self.pitch}_r{self.rate}{spread}"


def variant_of(speaker: str) -> str:
    """The voice variant in a speaker label of :attr:`Voice.label` ("en-us_f2_p50_r175" -> "f2"); any other name as it is."""
    match = re.match(r"[^_]+_(.+?)_p\d+_r\d+(_g-?\d+)?$", speaker)
    return match.group(1) if match else speaker


def clean_phone(symbol: str) -> str:
    """Strip stress and length marks from an espeak phoneme mnemonic; pauses become one silence class."""
    symbol = symbol.strip()
    if symbol in PAUSES or symbol.startswith("_"):
        return SILENCE
    return symbol.replace("'", "").replace(",", "").replace("%", "").replace("=", "") or SILENCE


class Espeak:
    """One espeak-ng instance (the library is process-global: one thread at a time)."""

    _lock = threading.Lock()

    def __init__(self, tracts: bool = False):
        """``tracts``: read the data from a private copy (links to the wheel's files) that :class:`Tract`
        variant files are written into."""
        try:
            import espeakng_loader
        except ImportError:
            raise DataError(
                "speech synthesis needs espeak-ng: pip install 'seqae[speech]' (installs the espeakng-loader wheel)"
            ) from None
        self.lib = ctypes.cdll.LoadLibrary(str(espeakng_loader.get_library_path()))
        self._variants: Path | None = None
        folder = Path(espeakng_loader.get_data_path())
        if tracts:
            self._copy = tempfile.TemporaryDirectory(prefix="seqae-espeak-")  # removed with the engine
            folder = linked_copy(folder, Path(self._copy.name) / "espeak-ng-data")
            self._variants = folder / "voices" / "!v"
        data = str(folder).encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise DataError(f"espeak-ng failed to initialise (data folder {data.decode()})")
        self.sample_rate = rate
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = CALLBACK(self._on_synth)  # kept alive while the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == EVENT_PHONEME:
                self._events.append((event.audio_position, event.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
        """Waveform (float32 at ``self.sample_rate``) and phones ``[(start_s, end_s, phone)]``."""
        with self._lock:
            if voice.tract is not None:
                if self._variants is None:
                    raise DataError(f"voice {voice.name}: a tract voice needs Espeak(tracts=True)")
                path = self._variants / voice.tract.name
                if not path.exists():  # once per voice, not per utterance
                    path.write_text(voice.tract.voice_file())
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise DataError(f"espeak-ng does not know the voice {voice.name!r}")
            self.lib.espeak_SetParameter(RATE, voice.rate, 0)
            self.lib.espeak_SetParameter(PITCH, voice.pitch, 0)
            self.lib.espeak_SetParameter(RANGE, voice.range, 0)
            self._samples, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            if status != 0:
                raise DataError(f"espeak-ng could not synthesise {text[:40]!r} (error {status})")
            self.lib.espeak_Synchronize()
            samples = np.concatenate(self._samples) if self._samples else np.zeros(0, np.int16)
            events = list(self._events)
        wave = pcm16_to_float(samples)
        duration = len(wave) / self.sample_rate
        phones = []
        for k, (position_ms, symbol) in enumerate(events):
            start = position_ms / 1000.0
            end = events[k + 1][0] / 1000.0 if k + 1 < len(events) else duration
            end = min(end, duration)
            if end <= start:
                continue
            label = clean_phone(symbol)
            if phones and phones[-1][2] == label == SILENCE and abs(phones[-1][1] - start) < 1e-6:
                phones[-1] = (phones[-1][0], end, label)  # one silence, not several
            else:
                phones.append((start, end, label))
        return wave, phones


def linked_copy(source: Path, out: Path) -> Path:
    """espeak-ng's data folder at ``out``: links to every file of ``source`` but ``voices/!v``, a real folder
    (of links) that variant files can be added to."""
    (out / "voices" / "!v").mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "voices":
            (out / entry.name).symlink_to(entry)
    for entry in (source / "voices").iterdir():
        if entry.name != "!v":
            (out / "voices" / entry.name).symlink_to(entry)
    for entry in (source / "voices" / "!v").iterdir():
        (out / "voices" / "!v" / entry.name).symlink_to(entry)
    return out


def wide_voices(n: int, seed: int, exclude: tuple[str, ...] = (), tracts: bool = False) -> list[Voice]:
    """``n`` voices spread over what espeak-ng lets one set: every variant in turn (timbre, Klatt
    settings; a seeded order), an accent, a pitch (5 to 95), a pitch range (0, monotone, to 100) and a
    rate (120 to 230 words a minute) drawn at random for each, no two alike. ``tracts``: every second
    voice a :class:`Tract` of its own (:meth:`Tract.draw`) instead of a variant."""
    rng = np.random.default_rng([seed, 11])
    pool = [v for v in VARIANTS if v not in exclude]
    variants = [pool[i] for i in rng.permutation(len(pool))]
    out: list[Voice] = []
    while len(out) < n:
        accent, tract = ACCENTS[rng.integers(len(ACCENTS))], Tract.draw(rng) if tracts and len(out) % 2 else None
        variant = tract.name if tract else variants[(len(out) // (2 if tracts else 1)) % len(variants)]
        voice = Voice(f"{accent}+{variant}", int(rng.integers(5, 96)), int(rng.integers(120, 231)), int(rng.integers(0, 101)),
                      tract)
        if voice.label not in {v.label for v in out}:
            out.append(voice)
    return out


def voices(n: int, seed: int, distinct_timbres: bool = False, exclude: tuple[str, ...] = ()) -> list[Voice]:
    """``n`` distinct voices: accents x variants first, then pitch and rate settings, in a seeded order.

    ``distinct_timbres``: every voice a different (variant, pitch) pair, the accent drawn at random, so
    that no two speakers differ by accent alone (voice conversion moves timbre and pitch, not accent).
    ``exclude``: variants no voice may use (they are held out whole: :func:`held_out_voices`)."""
    rng = np.random.default_rng(seed)
    pool = [v for v in VARIANTS if v not in exclude]
    if distinct_timbres:
        variants = [pool[i] for i in rng.permutation(len(pool))]
        pitches = (50, 25, 75, 38, 62, 88, 12, 100)
        if n > len(variants) * len(pitches):
            raise DataError(f"at most {len(variants) * len(pitches)} voices with distinct timbres; asked for {n}")
        chosen = [Voice(f"{ACCENTS[rng.integers(len(ACCENTS))]}+{variants[k % len(variants)]}", pitches[k // len(variants)])
                  for k in range(n)]
        return [chosen[i] for i in rng.permutation(n)]  # the held-out speakers are the last ones: any pitch
    base = [Voice(f"{accent}+{variant}") for accent in ACCENTS for variant in pool]
    order = [base[i] for i in rng.permutation(len(base))]
    out = order[:n]
    settings = [(p, r) for p in (35, 50, 65, 80) for r in (150, 175, 200)]
    k = 0
    while len(out) < n:
        pitch, rate = settings[(k // len(order)) % len(settings)]
        v = order[k % len(order)]
        candidate = Voice(v.name, pitch, rate)
        if candidate not in out:
            out.append(candidate)
        k += 1
    return out


def held_out_voices(variants: tuple[str, ...], seed: int) -> list[Voice]:
    """Two voices of each held-out variant (pitch 35 and 65, an accent drawn at random): voices whose
    variant (timbre, Klatt synthesis settings) no training or unseen speaker has, the nearest this engine
    comes to voices from elsewhere."""
    rng = np.random.default_rng([seed, 7])
    return [Voice(f"{ACCENTS[rng.integers(len(ACCENTS))]}+{variant}", pitch) for variant in variants for pitch in (35, 65)]


def corpus_sentences(corpus: str | Path, n: int, seed: int, min_words: int = 4, max_words: int = 18) -> list[str]:
    """``n`` sentences of moderate length from a text corpus (the bundled Austen by default)."""
    from seqae.datasets.sentences import corpus_files, iter_sentences

    pool = [s.text for s in iter_sentences(corpus_files(corpus), 5000) if min_words <= len(s.text.split()) <= max_words]
    pool = [s for s in dict.fromkeys(pool) if all(c.isascii() for c in s)]
    if len(pool) < n:
        raise DataError(f"{corpus}: {len(pool)} usable sentences, fewer than the {n} asked for")
    rng = np.random.default_rng(seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def check_settings(speakers: int, utterances: int, sample_rate: int, test_sentences: float, test_speakers: int,
                   held_out_variants: tuple[str, ...] = ()) -> None:
    """The corpus settings, checked before anything is written (each problem names its option)."""
    unknown = [v for v in held_out_variants if v not in VARIANTS]
    if unknown:
        raise DataError(f"--held-out-variants: {', '.join(unknown)} is not an espeak-ng variant; choose among {', '.join(VARIANTS)}")
    if len(held_out_variants) >= len(VARIANTS) - 1:
        raise DataError(f"--held-out-variants: {len(held_out_variants)} of {len(VARIANTS)} variants held out leaves too few to train on")
    if speakers < 1:
        raise DataError(f"--speakers {speakers}: need at least 1 training speaker")
    if utterances < 2:
        raise DataError(f"--utterances {utterances}: need at least 2 sentences (some are held out)")
    if test_speakers < 0:
        raise DataError(f"--unseen-speakers {test_speakers}: must be 0 or more")
    if not 8000 <= sample_rate <= 192000:
        raise DataError(f"--sample-rate {sample_rate}: use a rate between 8000 and 192000 Hz (e.g. 16000)")
    if not 0.0 < test_sentences < 1.0:
        raise DataError(f"--test-fraction {test_sentences}: must be between 0 and 1 (the share of sentences held out)")
    if int(round(test_sentences * utterances)) >= utterances:
        raise DataError(f"--test-fraction {test_sentences}: holds out every one of the {utterances} sentences; lower it")


def speak_to_file(engine: Espeak, text: str, voice, sample_rate: int, path: Path) -> list:
    """One utterance, resampled to ``sample_rate`` and written as 16-bit WAV; its phone alignment."""
    import soundfile
    import torch
    import torchaudio

    wave, phones = engine.speak(text, voice)
    if len(wave) == 0:
        raise DataError(f"espeak-ng produced no audio for voice {voice.name} and {text[:40]!r}")
    resampled = torchaudio.functional.resample(torch.from_numpy(wave), engine.sample_rate, sample_rate).numpy()
    soundfile.write(str(path), resampled, sample_rate, subtype="PCM_16")
    return [[round(a, 4), round(b, 4), p] for a, b, p in phones]


def write_manifests(out: Path, manifests: dict[str, list[str]], info: dict) -> dict[str, Path]:
    """The non-empty manifests as ``NAME.jsonl`` and the corpus description as ``corpus.json``."""
    paths = {}
    for name, lines in manifests.items():
        if lines:
            paths[name] = out / f"{name}.jsonl"
            paths[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "corpus.json").write_text(json.dumps(info, indent=1))
    return paths


def synthesise_corpus(
    out: str | Path,
    speakers: int,
    utterances: int,
    corpus: str | Path,
    seed: int = 0,
    sample_rate: int = 16000,
    test_sentences: float = 0.2,
    test_speakers: int = 0,
    distinct_timbres: bool = False,
    held_out_variants: tuple[str, ...] = (),
    wide: bool = False,
    tracts: bool = False,
) -> dict[str, Path]:
    """Write WAVs and the manifests ``train.jsonl`` (training speakers, training sentences),
    ``test.jsonl`` (training speakers, held-out sentences), with ``test_speakers``
    ``unseen_train.jsonl``/``unseen_test.jsonl`` (held-out speakers, the same two sentence sets) and, with
    ``held_out_variants``, ``held_out_train.jsonl``/``held_out_test.jsonl`` (:func:`held_out_voices`: variants
    no other speaker uses). ``wide``: the training and unseen voices from :func:`wide_voices` (``tracts``: half
of them with vocal tracts of their own)."""
    from tqdm import tqdm

    out = Path(out)
    check_settings(speakers, utterances, sample_rate, test_sentences, test_speakers, held_out_variants)
    engine = Espeak(tracts=tracts)
    sentences = corpus_sentences(corpus, utterances, seed)
    held_out = held_out_voices(held_out_variants, seed)
    made = partial(wide_voices, tracts=tracts) if wide or tracts else partial(voices, distinct_timbres=distinct_timbres)
    all_voices = made(speakers + test_speakers, seed, exclude=held_out_variants) + held_out
    n_test = max(1, int(round(test_sentences * utterances)))
    test_ids = set(np.random.default_rng(seed + 1).choice(utterances, size=n_test, replace=False).tolist())
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    manifests: dict[str, list[str]] = {"train": [], "test": [], "unseen_train": [], "unseen_test": [], "held_out_train": [],
                                       "held_out_test": []}
    with tqdm(total=len(all_voices) * utterances, desc="synthesising", unit=" utt") as bar:
        for v_index, voice in enumerate(all_voices):
            folder = out / "wavs" / voice.label
            folder.mkdir(parents=True, exist_ok=True)
            for s_index, text in enumerate(sentences):
                path = folder / f"{s_index:05d}.wav"
                phones = speak_to_file(engine, text, voice, sample_rate, path)
                record = {"audio": str(path.relative_to(out)), "speaker": voice.label, "text": text, "sentence": s_index,
                          "phones": phones}
                group = "" if v_index < speakers else "unseen_" if v_index < speakers + test_speakers else "held_out_"
                split = group + ("test" if s_index in test_ids else "train")
                manifests[split].append(json.dumps(record))
                bar.update(1)
    info = {"speakers": [v.label for v in all_voices[:speakers]],
            "unseen_speakers": [v.label for v in all_voices[speakers : speakers + test_speakers]],
            "held_out_variants": list(held_out_variants), "held_out_speakers": [v.label for v in held_out],
            "wide_voices": wide or tracts, "sentences": len(sentences), "test_sentences": sorted(test_ids), "seed": seed,
            "tracts": {v.tract.name: asdict(v.tract) for v in all_voices if v.tract},
            "sample_rate": sample_rate,
            "engine": "espeak-ng (espeakng-loader)"}
    return write_manifests(out, manifests, info)
