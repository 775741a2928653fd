"""Property-based tests (hypothesis): whatever the manifest or the recipe, the reader returns valid
objects or raises its own error naming the file (and line or key), never anything else."""

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqae.config import ConfigError, Recipe, load_recipe, recipe_from_dict
from seqae.datasets.audio import read_manifest
from seqae.datasets.base import DataError
from seqae.registry import all_families, family_names

FOLDER = Path(tempfile.mkdtemp(prefix="seqae-properties-"))
soundfile.write(str(FOLDER / "a.wav"), np.zeros(1600, np.float32), 16000)


def teardown_module():
    shutil.rmtree(FOLDER, ignore_errors=True)


numbers = st.one_of(st.integers(-5, 5), st.floats(-1.0, 3.0), st.sampled_from([float("nan"), float("inf"), -float("inf")]))
phone = st.one_of(st.tuples(numbers, numbers, st.text(max_size=3)).map(list), st.text(max_size=4), st.integers())
record = st.fixed_dictionaries(
    {"audio": st.one_of(st.just("a.wav"), st.just("missing.wav"), st.just(str(FOLDER / "a.wav")), st.integers(), st.none())},
    optional={
        "speaker": st.one_of(st.text(max_size=5), st.integers()),
        "text": st.text(max_size=10),
        "phones": st.one_of(
            st.lists(phone, max_size=4),
            st.lists(st.tuples(numbers, numbers, st.text(max_size=2)).map(list), max_size=3),
            st.text(max_size=3),
            st.integers(),
        ),
    },
)
line = st.one_of(record.map(json.dumps), st.text(max_size=20), st.just(""), st.lists(st.integers(), max_size=3).map(json.dumps))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, max_size=6))
def test_manifest_reader_returns_valid_utterances_or_names_the_line(lines):
    path = FOLDER / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        utterances = read_manifest(path)
    except DataError as err:
        message = str(err)
        assert message.startswith(str(path))
        if "lists no utterances" not in message:
            assert message[len(str(path))] == ":" and message[len(str(path)) + 1].isdigit()  # file:line
        return
    assert utterances
    for utt in utterances:
        assert utt.audio.is_file()
        previous_end = 0.0
        for start, end, _ in utt.phones:
            assert 0.0 <= start < end < float("inf") and start >= previous_end - 1e-6
            previous_end = end


values = st.one_of(st.integers(-3, 3000), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8),
                   st.lists(st.integers(0, 64), max_size=3), st.lists(st.text(max_size=3), max_size=2))
known_keys = sorted({f.name for family in all_families() for cls in (family.model_config, family.data_config, family.eval_config)
                     for f in dataclasses.fields(cls)} | {"steps", "batch_size", "lr", "warmup_steps", "schedule", "grad_accum"})
section = st.dictionaries(st.one_of(st.sampled_from(known_keys), st.text(max_size=6)), values, max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(family_names()) + ["nope"]), section, section, section, section,
       st.dictionaries(st.text(max_size=5), section, max_size=1))
def test_recipe_loader_returns_a_recipe_or_names_the_key(family, model, data, train, evals, extra):
    raw = {"model": dict(model, family=family), "data": data, "train": train, "eval": evals, **extra}
    try:
        recipe = recipe_from_dict(raw, "r.toml", base_dir=FOLDER, check_paths=False)
    except ConfigError as err:
        assert str(err).startswith("r.toml")
        return
    assert isinstance(recipe, Recipe) and recipe.family == family
    assert recipe.train.steps > 0 and recipe.train.batch_size > 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_as_a_recipe_file_is_a_recipe_or_an_error_naming_the_file(text):
    path = FOLDER / "any.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_recipe(path)
    except ConfigError as err:
        assert str(path) in str(err)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(numbers, numbers, st.text(max_size=2)).map(list), max_size=4), min_size=1, max_size=3))
def test_phone_alignments_are_accepted_only_when_finite_ordered_and_non_negative(alignments):
    lines = [json.dumps({"audio": "a.wav", "speaker": "s", "phones": phones}) for phones in alignments]
    test_manifest_reader_returns_valid_utterances_or_names_the_line.hypothesis.inner_test(lines)
