"""``seqae convert``'s help line and arguments: argparse only, so that ``seqae --help`` imports no torch.
The command itself runs in :mod:`seqae.families.voice_conversion.convert`."""

from __future__ import annotations

from typing import Any

NAME = "convert"
HELP = "voice conversion: SOURCE's words in the voice of TARGET"


def add_arguments(parser: Any) -> None:
    parser.add_argument("--source", required=True, help="audio file whose content is kept")
    parser.add_argument("--target", action="append", default=[], metavar="FILE",
                        help="an utterance of the target speaker (repeatable: their speaker codes are averaged)")
    parser.add_argument("--target-speaker", help="adversarial runs: the name of a training speaker")
    parser.add_argument("-o", "--output", required=True, help="output .wav (a .npy of the converted log-mel and a .png beside it)")
    parser.add_argument("--pitch-range", metavar="{target,source}",
                        help="models trained with model.pitch: scale the source's pitch contour to the target's range (target) or "
                             "keep the source's (source); default: the run's eval.pitch_range (target)")
    parser.add_argument("--adapt-steps", type=int, metavar="N",
                        help="AdaIN-VC runs: fit the target's speaker vector to the --target utterances in N steps before converting "
                             "(VoiceConversion.adapted_code; helps voices unlike the training voices); default: the run's "
                             "eval.adapt_steps (0: the speaker encoder's code)")
