"""The content-consistency loss on parallel speech: DTW frame maps, partner windows and the loss itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.datasets.audio import ArrayStore
from seqae.families.voice_conversion.data import SpeakerSegments
from seqae.families.voice_conversion.parallel import align_partners, frame_map, pick_partners


def utterance(rng, frames=60, n_mels=40):
    """A log-mel whose spectrum changes slowly (a few 'phones' of different shape)."""
    parts = [np.repeat(rng.normal(-4.0, 2.0, size=(n_mels, 1)), frames // 6, axis=1) for _ in range(6)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def test_the_frame_map_follows_a_slowed_copy():
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.normal(0.0, 0.5, size=(40, 60)), axis=1).astype(np.float32)  # a spectrum that moves every frame
    slow = np.repeat(a, 2, axis=1)  # every frame twice: frame i of a is frames 2i, 2i+1 of slow
    mapped = frame_map(a, slow)
    assert mapped.shape == (60,) and mapped.dtype == np.int32
    assert np.all(np.diff(mapped) >= 0)
    assert np.abs(mapped - (2 * np.arange(60) + 0.5)).max() <= 1.5
    # on piecewise-constant 'phones' the map lands inside each phone's frames of the slowed copy
    b = utterance(rng)
    mapped = frame_map(b, np.repeat(b, 2, axis=1))
    assert all(20 * (i // 10) <= mapped[i] < 20 * (i // 10 + 1) for i in range(60))


def test_partners_say_the_same_text_in_another_voice():
    rng = np.random.default_rng(1)
    mels = [utterance(rng) for _ in range(5)]
    texts = ["one", "One ", "one", "two", "three"]
    speakers = ["a", "b", "a", "c", "a"]
    partners = align_partners(ArrayStore(mels), pick_partners(texts, speakers, 2, seed=0))
    assert [sorted(p) for p in partners.utterances] == [[1], [0, 2], [1], [], []]
    assert len(partners) == 4
    assert [m.shape for m in partners.maps[1]] == [(60,), (60,)]


class FolderStore(ArrayStore):
    """An ArrayStore with a cache folder, as a FileStore has; ``reads`` counts the log-mels read."""

    def __init__(self, mels, folder):
        super().__init__(mels)
        self.folder, self.reads = folder, 0

    def full(self, i):
        self.reads += 1
        return super().full(i)


def test_the_alignment_is_kept_beside_a_cache_folder_and_read_back(tmp_path, monkeypatch):
    import seqae.atomic
    from seqae.atomic import CheckpointError

    rng = np.random.default_rng(4)
    mels = [utterance(rng, frames=30 + 6 * k) for k in range(4)]
    chosen = pick_partners(["s", "s", "s", "t"], ["a", "b", "c", "a"], 2, seed=0)
    first = align_partners(FolderStore(mels, tmp_path), chosen)
    assert len(list(tmp_path.glob("partners-*.npz"))) == 1
    again = FolderStore(mels, tmp_path)
    second = align_partners(again, chosen)
    assert again.reads == 0  # read back, not aligned again
    assert second.utterances == first.utterances
    assert all(np.array_equal(a, b) and b.dtype == np.int32 for ra, rb in zip(first.maps, second.maps) for a, b in zip(ra, rb))
    kept = next(tmp_path.glob("partners-*.npz"))
    kept.write_bytes(b"not a numpy file")  # damaged: aligned again and replaced
    damaged = FolderStore(mels, tmp_path)
    assert all(np.array_equal(a, b) for ra, rb in zip(first.maps, align_partners(damaged, chosen).maps) for a, b in zip(ra, rb))
    assert damaged.reads > 0 and kept.read_bytes().startswith(b"PK")
    other = pick_partners(["s", "s", "s", "t"], ["a", "b", "c", "a"], 1, seed=0)  # another choice: its own file
    assert [len(m) for m in align_partners(FolderStore(mels, tmp_path), other).maps] == [1, 1, 1, 0]
    assert len(list(tmp_path.glob("partners-*.npz"))) == 2

    def refuse(path, data):
        raise CheckpointError(f"{path}: could not write (read-only)")

    monkeypatch.setattr(seqae.atomic, "atomic_write", refuse)
    fresh = tmp_path / "read-only"
    fresh.mkdir()
    aligned = align_partners(FolderStore(mels, fresh), chosen)  # a read-only cache aligns and goes on
    assert all(np.array_equal(a, b) for ra, rb in zip(first.maps, aligned.maps) for a, b in zip(ra, rb))
    assert not list(fresh.iterdir())


def test_partner_windows_line_up_with_their_windows():
    rng = np.random.default_rng(2)
    a = utterance(rng, frames=48)
    b = np.repeat(a, 2, axis=1)  # the same 'sentence', said twice as slowly by another speaker
    store = [torch.from_numpy(a), torch.from_numpy(b)]
    partners = align_partners(ArrayStore([a, b]), pick_partners(["s", "s"], ["x", "y"], 1, seed=0))
    segments = SpeakerSegments(store, [0, 1], 16, -4.0, 2.0, "t", partners=partners)
    batch = segments.collate(np.arange(len(segments)))
    for row in range(len(segments)):
        index = batch["partner_index"][row]
        valid = index >= 0
        assert valid.sum() >= 6  # a window has aligned frames in its partner's window
        # an aligned frame of the partner window is the same spectrum as the window's frame
        x, partner = batch["x"][row][:, valid], batch["partner"][row][:, index[valid]]
        assert torch.allclose(x, partner, atol=1e-5)
    assert torch.equal(segments.collate(np.array([3]))["partner"], segments.collate(np.array([3]))["partner"])


@pytest.mark.parametrize("form", ["squared", "contrastive"])
def test_the_loss_is_least_for_one_voice_and_trains_both_sides(form):
    from seqae.families.voice_conversion.config import VoiceConversionConfig
    from seqae.families.voice_conversion.model import VoiceConversion

    config = VoiceConversionConfig(input_dim=40, channels=16, blocks=1, content_dim=4, speaker_dim=8, speakers=["a", "b"],
                                   content_consistency_weight=1.0, content_consistency=form)
    model = VoiceConversion(config).eval()
    rng = np.random.default_rng(3)
    x = torch.from_numpy(utterance(rng, frames=24))[None]
    mask = torch.ones(1, 24, dtype=torch.bool)
    mean = model.content(x, mask)
    same = {"x": x, "mask": mask, "partner": x, "partner_mask": mask, "partner_index": torch.arange(24)[None]}
    least = model.content_consistency(mean, same).item()
    if form == "squared":
        assert least < 1e-10
    other = dict(same, partner=x + torch.linspace(-1, 1, 40)[None, :, None] * torch.randn(1, 1, 24))
    loss = model.content_consistency(mean, other)
    assert loss.item() > max(least, 1e-3)
    loss.backward()
    assert model.content_encoder.inp.weight.grad.abs().sum() > 0
    none = dict(same, partner_index=torch.full((1, 24), -1))
    assert model.content_consistency(mean, none).item() == 0.0


def test_training_with_the_loss_on_a_parallel_corpus_and_its_error_on_another(vc_corpus, tmp_path, capsys):
    import json

    import seqae

    from conftest import expect_error
    from tiny import TINY_VC, write_recipe

    train, unseen = vc_corpus
    text = TINY_VC.replace("METHOD", "adain").replace("TRAIN", str(train)).replace("UNSEEN", str(unseen)).replace("steps = 12", "steps = 3")
    recipe = write_recipe(tmp_path, text)
    run = seqae.train(recipe, out=tmp_path / "run", overrides=["model.content_consistency_weight=1.0"])
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("consistency" in record and record["consistency"] > 0 for record in logged)
    run = seqae.train(recipe, out=tmp_path / "contrast", overrides=["model.content_consistency_weight=0.1",
                                                                     "model.content_consistency=contrastive"])
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("consistency" in record and record["consistency"] > 0.5 for record in logged)  # InfoNCE: near log(frames)
    expect_error(["train", recipe, "--out", tmp_path / "bad", "--set", "model.content_consistency_temperature=0"], capsys,
                 "content_consistency_temperature")
    expect_error(["train", recipe, "--out", tmp_path / "bad", "--set", "model.content_consistency_weight=-1"], capsys,
                 "content_consistency_weight")
    lines = [json.loads(line) for line in train.read_text().splitlines()]
    for k, record in enumerate(lines):
        record["text"] = f"sentence {k}"  # nobody says the same text twice
    lonely = tmp_path / "lonely.jsonl"
    lonely.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    for r in lines:  # the audio beside the manifest, as the corpus has it
        (tmp_path / r["audio"]).write_bytes((train.parent / r["audio"]).read_bytes())
    expect_error(["train", recipe, "--out", tmp_path / "bad2", "--set", "model.content_consistency_weight=1.0",
                  "--set", f"data.source={lonely}"], capsys, "parallel corpus")
    assert not (tmp_path / "bad2").exists() or not any((tmp_path / "bad2").iterdir())


def test_the_contrastive_form_is_chance_for_a_blurred_code_and_zero_for_distinct_frames():
    from seqae.families.voice_conversion.model import NEIGHBOURS, aligned_contrast

    frames, channels = 12, 16
    index = torch.tensor([[3, 4, 5, 6, -1, 7, 8, 9, 10, 11, -1, -1]])
    mask = torch.ones(1, frames, dtype=torch.bool)
    partner_mask = mask.clone()
    partner_mask[0, 11] = False  # padding: never a candidate, and the frame aligned to it does not count
    partner = torch.eye(channels)[:, :frames][None]  # every partner frame its own direction
    blurred = torch.ones(1, channels, frames)  # the same code on every frame: all candidates alike
    loss = aligned_contrast(blurred, partner[:, :, :1].expand(-1, -1, frames), index, mask, partner_mask, 0.1)
    candidates = []
    for t in range(frames):
        if index[0, t] >= 0 and partner_mask[0, index[0, t]]:
            i = int(index[0, t])
            shut = {s for s in range(frames) if 0 < abs(s - i) <= NEIGHBOURS} | {11}
            candidates.append(frames - len(shut))
    assert loss.item() == pytest.approx(float(np.mean(np.log(candidates))), rel=1e-5)
    codes = partner.gather(2, index.clamp(min=0)[:, None, :].expand(-1, channels, -1))  # each frame = its partner's
    assert aligned_contrast(codes, partner, index, mask, partner_mask, 0.01).item() < 1e-6
    neighbour = partner.gather(2, (index.clamp(min=0) + 1).clamp(max=frames - 1)[:, None, :].expand(-1, channels, -1))
    assert aligned_contrast(neighbour, partner, index, mask, partner_mask, 0.01).item() > 1.0  # the wrong frame costs
    assert aligned_contrast(codes, partner, torch.full_like(index, -1), mask, partner_mask, 0.1).item() == 0.0
