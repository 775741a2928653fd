"""``seqae summarize``'s help line and arguments: argparse only, so that ``seqae --help`` imports no torch.
The command itself runs in :mod:`seqae.families.summarizer.family`."""

from __future__ import annotations

from typing import Any

NAME = "summarize"
HELP = "summarise texts (one per line) with a summariser run"


def add_arguments(parser: Any) -> None:
    parser.add_argument("-i", "--input", required=True, help="texts to summarise, one per line")
    parser.add_argument("-o", "--output", required=True, help="summaries, one per line (the same line numbers)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--ratio", type=float, help="summary length as a share of each text's (default: the run's)")
    length.add_argument("--length", type=int, help="a fixed summary length in tokens")
