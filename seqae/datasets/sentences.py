"""Reading plain-text books into sentences: paragraphs, chapter headings (a chapter is the unit the
held-out split and the grouped probes keep together), and a sentence splitter that knows
abbreviations and quotes."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqae.datasets.base import DataError

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "esq", "rev", "col", "capt", "gen", "lt", "sgt", "prof",
    "hon", "messrs", "mme", "mlle", "no", "vol", "ch", "chap", "fig", "vs", "etc", "ie", "eg", "cf", "viz",
    "mt", "ft", "co", "inc", "ltd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec",
}


HEADING = re.compile(
    r"^\s*(chapter|volume|book|part|letter)\s+(?:"
    r"(?:[0-9]+|[ivxlcdm]+)\b(?:\s*[.:\u2014-]\s*\S.{0,100})?"  # "CHAPTER 1. Loomings." (a number, then a title)
    r"|(?:[0-9]+|[ivxlcdm]+|the\s+\w+|\w+)\b[^a-z]{0,40}"  # "Chapter the First", "VOLUME I", "Letter 4"
    r")$",
    re.IGNORECASE,
)


SENTENCE_END = re.compile(r"([.!?]+)([\"'”’)\]]*)(\s+)")


OPENERS = "\"'“‘([_"


def is_heading(paragraph: str) -> bool:
    """Chapter and volume headings, which separate sentences rather than being sentences."""
    text = " ".join(paragraph.split())
    return len(text) < 120 and bool(HEADING.match(text))


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences.

    A sentence ends at ``.``, ``!`` or ``?`` (possibly followed by closing quotes or brackets) when the
    next word starts with a capital letter, a digit or an opening quote/bracket, unless the stop ends
    a known abbreviation (Mr., Mrs., Dr., St., ...) or a single capital initial ("J. Smith").
    """
    text = " ".join(paragraph.split())
    if not text:
        return []
    sentences = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        end = match.end(2)
        following = text[match.end(3) : match.end(3) + 2]
        if not following or not (following[0].isupper() or following[0].isdigit() or following[0] in OPENERS):
            continue
        if match.group(1) == ".":
            words = text[start : match.start(1)].split()
            core = words[-1].lstrip(OPENERS).replace(".", "") if words else ""
            if core.lower() in ABBREVIATIONS or (len(core) == 1 and core.isupper()):  # "Mr.", "J. Smith"
                continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end(3)
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def corpus_files(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if source.exists() and not source.is_dir():
        raise DataError(f"{source}: not a regular file (a FIFO, device or socket); give a text file or a folder of them")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and (p.name.endswith(".txt") or p.name.endswith(".txt.gz")))
        if not files:
            raise DataError(f"{source}: no .txt or .txt.gz files in this folder")
        return files
    raise DataError(f"{source}: no such file or folder")


@dataclass
class Sentence:
    text: str
    document: int  # index of the file
    segment: int  # running index of the chapter (windows never cross segments)
    line: int  # 1-based line of the paragraph in its file


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a text file (``.gz`` or not), read one at a time. Non-UTF-8
    bytes are reported with their byte offset; NUL bytes (a binary file) are an error."""
    opener = gzip.open if path.name.endswith(".gz") else open
    offset = 0
    try:
        with opener(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}:{number}: not UTF-8 text (invalid byte 0x{raw[err.start]:02x} at byte offset "
                        f"{offset + err.start}); convert it with e.g. iconv -f latin1 -t utf-8"
                    ) from None
                offset += len(raw)
                if number == 1:
                    line = line.lstrip("\ufeff")
                if "\x00" in line:
                    raise DataError(f"{path}:{number}: holds NUL bytes; this looks like a binary file, not text")
                yield number, line
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read ({err}); is it a damaged .gz file?") from None


def iter_paragraphs(path: Path, max_chars: int) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each paragraph, read line by line: memory stays bounded by one
    paragraph whatever the file's size."""
    lines: list[str] = []
    size = 0
    first = 1
    for number, line in iter_lines(path):
        if line.strip():
            if not lines:
                first = number
            lines.append(line)
            size += len(line)
            if size > 20 * max_chars:
                raise DataError(
                    f"{path}:{first}: a paragraph of more than {20 * max_chars:,} characters without a blank line; "
                    "is this prose with paragraphs?"
                )
        elif lines:
            yield first, "".join(lines)
            lines, size = [], 0
    if lines:
        yield first, "".join(lines)


def iter_line_items(files: list[Path], max_chars: int, block: int = 20) -> Iterator[Sentence]:
    """One item per non-empty line (a corpus of one text per line, as news first sentences are); every
    ``block`` lines of a file form a segment, so that holding every n-th segment out spreads the held-out
    texts over the file."""
    segment = 0
    for doc, path in enumerate(files):
        kept = 0
        for number, line in iter_lines(path):
            text = " ".join(line.split())
            if not text:
                continue
            if len(text) > max_chars:
                raise DataError(f"{path}:{number}: a line of {len(text):,} characters, more than data.max_sentence_chars "
                                f"({max_chars:,})")
            if kept % block == 0:
                segment += 1
            kept += 1
            yield Sentence(text, doc, segment, number)


def iter_sentences(files: list[Path], max_chars: int) -> Iterator[Sentence]:
    """Stream the sentences of a corpus in order (memory stays bounded by one paragraph)."""
    segment = 0
    for doc, path in enumerate(files):
        segment += 1
        for line, block in iter_paragraphs(path, max_chars):
            if is_heading(block):
                segment += 1
                continue
            for sentence in split_sentences(block):
                if len(sentence) > max_chars:
                    raise DataError(
                        f"{path}:{line}: a sentence of {len(sentence):,} characters, more than "
                        f"data.max_sentence_chars ({max_chars:,}); is this prose with sentence punctuation?"
                    )
                yield Sentence(sentence, doc, segment, line)
