"""Text corpora for sentence encoders: reading, sentence splitting, subword vocabularies, a tokenised
memory-mapped cache, and batches of contiguous sentences or of (previous, current, next) triples.

A corpus is a text file or a folder of them (``.txt`` or ``.txt.gz``), one document per file, paragraphs
separated by blank lines. Chapter headings ("Chapter 1", "CHAPTER IV", "VOLUME I") are breaks, not
sentences: sentences keep their order, and no training window crosses a document or a chapter.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqae.config import ConfigError, choice, path_field
from seqae.datasets.base import BatchSource, DataError, build_once, default_cache_dir
from seqae.datasets.sentences import Sentence, corpus_files, iter_line_items, iter_sentences

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]  # ids 0..3
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# abbreviations after which a full stop does not end a sentence (compared without the stop, lower case)
# a candidate end: . ! or ? (or an ellipsis), then closing quotes/brackets, then space


@dataclass
class TextDataConfig:
    """``[data]`` for the sentence encoders."""

    corpus: str = path_field("", doc="a text file or a folder of .txt/.txt.gz files (one document each)")
    tokenizer: str = choice("bpe", "bpe", "wordpiece")
    vocab_size: int = 8000
    lowercase: bool = True
    max_tokens: int = 48  # longer sentences are truncated
    max_sentence_chars: int = 5000  # a longer "sentence" is an error (a file without sentence punctuation)
    test_every: int = 10  # every n-th chapter is held out for evaluation
    # quick-thought: each batch is this many runs of batch_size / runs_per_batch consecutive sentences
    # from random places in the corpus (1: one run, as in the paper); the other runs' sentences are
    # negatives from other chapters and books
    runs_per_batch: int = 1
    cache_dir: str = ""  # tokenised corpus cache; default $SEQAE_CACHE or ~/.cache/seqae
    # a tokenizer.json to use instead of training one (a run's, so that another run or `seqae eval` on another
    # machine numbers the words alike: training a vocabulary twice breaks its ties differently)
    tokenizer_file: str = path_field("", doc="a tokenizer.json (e.g. RUN/tokenizer.json) used instead of training one")

    def validate(self, where: str) -> None:
        if not self.corpus:
            raise ConfigError(f"{where}: data.corpus is required: a text file or a folder of text files")
        if self.vocab_size < 100:
            raise ConfigError(f"{where}: data.vocab_size must be at least 100")
        if self.max_tokens < 2 or self.test_every < 2:
            raise ConfigError(f"{where}: data.max_tokens and data.test_every must be at least 2")
        if self.runs_per_batch < 1:
            raise ConfigError(f"{where}: data.runs_per_batch must be at least 1")


def corpus_fingerprint(files: list[Path], config: TextDataConfig) -> str:
    h = hashlib.sha256()
    for path in files:
        stat = path.stat()
        h.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    settings = [config.tokenizer, config.vocab_size, config.lowercase, config.max_tokens, config.max_sentence_chars, config.test_every]
    if config.tokenizer_file:  # the given vocabulary's bytes, not its name
        settings.append(hashlib.sha256(given_tokenizer(config)).hexdigest())
    if getattr(config, "unit", "sentence") != "sentence":
        settings.append(config.unit)
    h.update(json.dumps(settings).encode())
    h.update(b"seqae-text-cache-4")
    return h.hexdigest()[:20]


def train_tokenizer(sentences: Iterator[str], config: TextDataConfig):
    """A BPE or WordPiece vocabulary (Hugging Face tokenizers) trained on the sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if config.tokenizer == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
        tokenizer.decoder = decoders.BPEDecoder()
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        trainer = trainers.WordPieceTrainer(vocab_size=config.vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
        tokenizer.decoder = decoders.WordPiece()
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if config.lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    return tokenizer


def given_tokenizer(config: TextDataConfig) -> bytes:
    """The bytes of ``data.tokenizer_file`` (whether they are a tokenizer is checked where the cache is built)."""
    path = Path(config.tokenizer_file)
    if not path.is_file():
        raise DataError(f"{path}: missing; data.tokenizer_file must be a tokenizer.json (e.g. RUN/tokenizer.json)")
    return path.read_bytes()


def load_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; the run directory needs its tokenizer.json to encode text")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own exception type
        raise DataError(f"{path}: not a tokenizer file ({err})") from None


def encode_batch(tokenizer, sentences: list[str], max_tokens: int) -> list[list[int]]:
    return [enc.ids[:max_tokens] for enc in tokenizer.encode_batch(sentences, add_special_tokens=False)]


@dataclass
class TokenisedCorpus:
    """Memory-mapped arrays of a tokenised corpus (in the cache folder)."""

    folder: Path
    tokens: np.ndarray  # (total_tokens,) int32
    offsets: np.ndarray  # (sentences + 1,) int64: sentence i is tokens[offsets[i]:offsets[i+1]]
    documents: np.ndarray  # (sentences,) int32
    segments: np.ndarray  # (sentences,) int32
    document_names: list[str]
    content_fingerprint: str = ""  # of the sentences, their documents and chapters (what the split depends on)

    def __len__(self) -> int:
        return len(self.documents)

    def ids(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def texts(self, indices: np.ndarray) -> list[str]:
        wanted = {int(i) for i in indices}
        found = {}
        with open(self.folder / "sentences.jsonl", encoding="utf-8") as fh:
            for j, line in enumerate(fh):
                if j in wanted:
                    found[j] = json.loads(line)
        return [found[int(i)] for i in indices]


def tokenise_corpus(config: TextDataConfig, quiet: bool = False) -> TokenisedCorpus:
    """Tokenise the corpus once into the cache (reused while the files and settings are unchanged)."""
    files = corpus_files(config.corpus)
    key = corpus_fingerprint(files, config)
    folder = default_cache_dir(config) / f"text-{key}"
    if not (folder / "done").exists():
        build_cache(files, config, folder, quiet)
    meta = json.loads((folder / "meta.json").read_text())
    tokens = np.memmap(folder / "tokens.bin", dtype=np.int32, mode="r") if meta["tokens"] else np.zeros(0, np.int32)
    return TokenisedCorpus(
        folder,
        tokens,
        np.load(folder / "offsets.npy", mmap_mode="r"),
        np.load(folder / "documents.npy", mmap_mode="r"),
        np.load(folder / "segments.npy", mmap_mode="r"),
        meta["documents"],
        meta.get("content_sha256", "")[:24],
    )


def build_cache(files: list[Path], config: TextDataConfig, folder: Path, quiet: bool) -> None:
    """Tokenise ``files`` into ``folder`` (:func:`seqae.datasets.base.build_once`)."""
    build_once(folder, lambda work: write_cache(files, config, work, quiet), "tokenised corpus cache")


def write_cache(files: list[Path], config: TextDataConfig, work: Path, quiet: bool) -> None:
    """The cache's files in ``work``: tokenizer, token ids, per-sentence arrays, texts and meta."""
    import sys

    from tqdm import tqdm

    show = not quiet and sys.stderr.isatty()
    # pass 1: the vocabulary (streamed from the files), or the one given, byte for byte
    if config.tokenizer_file:
        tokenizer = load_tokenizer(config.tokenizer_file)  # an error names the given file
        (work / "tokenizer.json").write_bytes(given_tokenizer(config))
    else:
        tokenizer = train_tokenizer((s.text for s in corpus_items(files, config)), config)
        try:
            tokenizer.save(str(work / "tokenizer.json"))
        except Exception as err:  # tokenizers raises its own exception type for I/O errors
            raise OSError(str(err)) from None
    # pass 2: token ids appended to a file, a chunk at a time; the per-sentence arrays are compact
    # (8 + 4 + 4 bytes a sentence), so memory stays bounded whatever the corpus size
    offsets, documents, segments = array("q", [0]), array("i"), array("i")
    content = hashlib.sha256()  # the sentences with their documents and chapters: what a held-out split depends on
    count = 0
    bar = tqdm(desc="tokenising", unit=" sentences", disable=not show)
    with open(work / "tokens.bin", "wb") as tok_fh, open(work / "sentences.jsonl", "w", encoding="utf-8") as txt_fh:
        chunk: list[Sentence] = []

        def flush():
            nonlocal count
            ids = encode_batch(tokenizer, [s.text for s in chunk], config.max_tokens)
            for s, sentence_ids in zip(chunk, ids):
                tok_fh.write(np.asarray(sentence_ids, dtype=np.int32).tobytes())
                offsets.append(offsets[-1] + len(sentence_ids))
                documents.append(s.document)
                segments.append(s.segment)
                txt_fh.write(json.dumps(s.text) + "\n")
                content.update(f"{s.document}|{s.segment}|{s.text}\n".encode())
            count += len(chunk)
            bar.update(len(chunk))
            chunk.clear()

        for sentence in corpus_items(files, config):
            chunk.append(sentence)
            if len(chunk) >= 10000:
                flush()
        flush()
    bar.close()
    if count == 0:
        raise DataError(f"{config.corpus}: no sentences found (empty corpus?)")
    total = offsets[-1]
    np.save(work / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
    np.save(work / "documents.npy", np.frombuffer(documents, dtype=np.int32))
    np.save(work / "segments.npy", np.frombuffer(segments, dtype=np.int32))
    names = [str(p.name).removesuffix(".gz").removesuffix(".txt") for p in files]
    meta = {"documents": names, "sentences": count, "tokens": total, "content_sha256": content.hexdigest()}
    (work / "meta.json").write_text(json.dumps(meta))


def corpus_items(files: list[Path], config) -> Iterator[Sentence]:
    """The corpus's items: its sentences, or (``data.unit = "line"``) its non-empty lines."""
    if getattr(config, "unit", "sentence") == "line":
        return iter_line_items(files, config.max_sentence_chars)
    return iter_sentences(files, config.max_sentence_chars)


def word_counts(folder: Path) -> np.ndarray:
    """Words (whitespace-separated) of every item of a tokenised corpus, read from its cache: ``(items,)``."""
    counts = []
    with open(folder / "sentences.jsonl", encoding="utf-8") as fh:
        for line in fh:
            counts.append(len(json.loads(line).split()))
    return np.asarray(counts, dtype=np.int32)


def held_out(corpus: TokenisedCorpus, every: int) -> np.ndarray:
    """Boolean mask ``(sentences,)`` of the held-out sentences: every n-th chapter."""
    return (np.asarray(corpus.segments) % every) == (every // 2)


def pad_batch(sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id arrays -> ``tokens`` ``(batch, max_len)`` padded with PAD_ID and ``lengths`` ``(batch,)``.

    An empty sentence (nothing left after tokenisation) becomes one UNK token, so every length is >= 1.
    """
    lengths = torch.tensor([max(1, len(s)) for s in sequences], dtype=torch.long)
    tokens = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            tokens[i, : len(s)] = torch.from_numpy(np.asarray(s, dtype=np.int64))
        else:
            tokens[i, 0] = UNK_ID
    return tokens, lengths


class ContiguousSentences(BatchSource):
    """Quick-thought batches: ``runs`` runs of ``batch_size / runs`` consecutive sentences each.

    Each batch is ``{"tokens": (B, T), "lengths": (B,), "segment": (B,)}``; ``segment`` labels each run's
    part of a segment (chapter), and sentences with different labels are never treated as neighbours.
    The epoch's runs tile the sentence stream from a random offset and come in random order; with
    ``runs`` > 1 a batch holds runs from different places in the corpus.
    """

    def __init__(self, corpus: TokenisedCorpus, indices: np.ndarray, name: str, runs: int = 1):
        self.corpus = corpus
        self.indices = np.asarray(indices)
        self.segments = np.asarray(corpus.segments)[self.indices]
        self.n_segments = int(self.segments.max()) + 1 if len(self.segments) else 1
        self.runs = runs
        self.name = name

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self) -> str:
        return self.name

    def epoch_batches(self, epoch: int, seed: int, batch_size: int) -> list[np.ndarray]:
        n = self.check_batch_size(batch_size, "sentences")
        if batch_size % self.runs:
            raise ConfigError(f"train.batch_size = {batch_size} is not a multiple of data.runs_per_batch = {self.runs}")
        run = batch_size // self.runs
        # a random offset per epoch so that run boundaries move; then the runs in random order
        rng = np.random.default_rng([seed, epoch])
        offset = int(rng.integers(0, run))
        starts = np.arange(offset, n - run + 1, run)
        if len(starts) < self.runs:
            starts = np.arange(0, self.runs * run, run)
        order = rng.permutation(starts)
        return [np.concatenate([np.arange(s, s + run) for s in order[i : i + self.runs]])
                for i in range(0, len(order) - self.runs + 1, self.runs)]

    def collate(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        rows = self.indices[positions]
        tokens, lengths = pad_batch([self.corpus.ids(int(i)) for i in rows])
        segment = self.segments[positions].astype(np.int64)
        jumps = np.flatnonzero(np.diff(positions) != 1) + 1
        if len(jumps):  # several runs: each gets labels of its own, keyed by its first position
            first = np.zeros(len(positions), dtype=np.int64)
            first[jumps] = jumps
            first = np.maximum.accumulate(first)
            segment = segment + self.n_segments * (np.asarray(positions, dtype=np.int64)[first] + 1)
        return {"tokens": tokens, "lengths": lengths, "segment": torch.from_numpy(segment)}


class SentenceTriples(BatchSource):
    """Skip-thought batches: (previous, current, next) sentences of one segment, bucketed by length.

    Each batch is ``{"tokens", "lengths", "prev_tokens", "prev_lengths", "next_tokens", "next_lengths"}``.
    """

    def __init__(self, corpus: TokenisedCorpus, indices: np.ndarray, name: str):
        self.corpus = corpus
        indices = np.asarray(indices)
        segments = np.asarray(corpus.segments)
        # a middle sentence needs both neighbours in its own segment (and in this split)
        middle = indices[1:-1]
        ok = (
            (segments[indices[:-2]] == segments[middle])
            & (segments[indices[2:]] == segments[middle])
            & (indices[:-2] == middle - 1)
            & (indices[2:] == middle + 1)
        )
        self.middles = middle[ok]
        offsets = np.asarray(corpus.offsets)
        self.lengths = (offsets[self.middles + 1] - offsets[self.middles]).astype(np.int64)
        self.name = name

    def __len__(self) -> int:
        return len(self.middles)

    def describe(self) -> str:
        return self.name

    def epoch_batches(self, epoch: int, seed: int, batch_size: int) -> list[np.ndarray]:
        n = self.check_batch_size(batch_size, "sentence triples")
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        # length buckets: sort chunks of 50 batches by length, so padding stays small
        chunk = batch_size * 50
        batches = []
        for i in range(0, n - batch_size + 1, chunk):
            part = order[i : i + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[j : j + batch_size] for j in range(0, len(part) - batch_size + 1, batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def collate(self, positions: np.ndarray) -> dict[str, torch.Tensor]:
        middles = self.middles[positions]
        batch = {}
        for name, shift in (("", 0), ("prev_", -1), ("next_", 1)):
            tokens, lengths = pad_batch([self.corpus.ids(int(i) + shift) for i in middles])
            batch[f"{name}tokens"], batch[f"{name}lengths"] = tokens, lengths
        return batch
