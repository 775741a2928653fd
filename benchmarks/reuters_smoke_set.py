"""The news smoke set of docs/RESULTS.md from the 70 Reuters-21578 articles Debian ships in r-cran-tm (not in
this repository): the first sentence of each article's body (the text to summarise), its title in lower case
(the reference headline) and, as unpaired training text from the same source, every other sentence of the
bodies (the first sentences left out).

    apt-get download r-cran-tm && dpkg -x r-cran-tm_*.deb tm
    python benchmarks/reuters_smoke_set.py tm/usr/lib/R/site-library/tm/texts OUT_DIR
    # OUT_DIR/texts.txt, refs.txt (70 lines each), bodies_rest.txt (one sentence per line)
"""

import html
import re
import sys
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z<])")


def articles(folder: Path) -> list[tuple[str, str]]:
    """(title, body) of acq/*.xml then crude/*.xml, in file-name order, whitespace collapsed."""
    out = []
    for path in sorted((folder / "acq").glob("*.xml")) + sorted((folder / "crude").glob("*.xml")):
        xml = path.read_text(encoding="latin-1")
        title, body = (re.search(f"<{tag}>(.*?)</{tag}>", xml, re.S) for tag in ("TITLE", "BODY"))
        if title is None or body is None:
            raise SystemExit(f"{path}: no <TITLE> or <BODY>; is this the r-cran-tm texts folder?")
        clean = [re.sub(r"\s+", " ", html.unescape(m.group(1))).strip() for m in (title, body)]
        out.append((clean[0], re.sub(r"\s*Reuter$", "", clean[1])))
    return out


def main(folder: str, out: str) -> None:
    pairs = articles(Path(folder))
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    firsts, rest = [], []
    for _, body in pairs:
        sentences = [s.strip() for s in SENTENCE_END.split(body) if s.strip()]
        firsts.append(sentences[0])
        rest += [s for s in sentences[1:] if len(s.split()) >= 4]
    (target / "texts.txt").write_text("\n".join(firsts) + "\n")
    (target / "refs.txt").write_text("\n".join(title.lower() for title, _ in pairs) + "\n")
    (target / "bodies_rest.txt").write_text("\n".join(rest) + "\n")
    print(f"{len(pairs)} articles; {len(rest)} other sentences ({sum(len(s.split()) for s in rest)} words) -> {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
