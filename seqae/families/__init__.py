"""One folder per model family: its config, model, data preparation, evaluation, figures, codes and
commands (``family.py`` holds its :class:`~seqae.families.base.Family`, which :mod:`seqae.registry` names).
Parts several families share live beside the folders: ``base`` (the Family interface), ``arrays``
(array and image data), ``text`` (sentence corpora and their evaluation), ``sentence_encoder`` (the
sentence encoders' common model)."""
