
import pytest

from seqae.config import ConfigError, dumps_toml, load_recipe, parse_override, read_toml
from seqae.families.autoencoder.model import AutoencoderConfig

from conftest import ROOT, TINY_AE, write_recipe


def test_recipe_reads_into_family_dataclasses(tiny_recipe):
    recipe = load_recipe(tiny_recipe)
    assert isinstance(recipe.model, AutoencoderConfig)
    assert recipe.model.hidden == [32, 8]
    assert recipe.train.steps == 40
    assert recipe.train.lr == pytest.approx(3e-3)


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write_recipe(tmp_path, TINY_AE.replace("lr = 3e-3", "lr = 3e-3\nlearning_rate = 1"))
    with pytest.raises(ConfigError, match=r"recipe\.toml.*unknown key 'train\.learning_rate'"):
        load_recipe(path)


def test_wrong_type_names_the_key(tmp_path):
    path = write_recipe(tmp_path, TINY_AE.replace("steps = 40", 'steps = "forty"'))
    with pytest.raises(ConfigError, match=r"recipe\.toml: train\.steps must be an integer"):
        load_recipe(path)


def test_list_item_type_is_checked(tmp_path):
    path = write_recipe(tmp_path, TINY_AE.replace("hidden = [32, 8]", 'hidden = [32, "8"]'))
    with pytest.raises(ConfigError, match=r"model\.hidden\[1\] must be an integer"):
        load_recipe(path)


def test_missing_data_file_names_the_key_and_path(tmp_path):
    path = write_recipe(tmp_path, TINY_AE.replace('source = "digits"', 'source = "nowhere.npy"'))
    with pytest.raises(ConfigError, match=r"data\.source: no such file or folder: .*nowhere\.npy"):
        load_recipe(path)


def test_relative_data_paths_resolve_against_the_recipe_folder(tmp_path):
    import numpy as np

    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    path = write_recipe(tmp_path / "sub", TINY_AE.replace('source = "digits"', 'source = "../x.npy"'))
    assert load_recipe(path).data.source == str((tmp_path / "x.npy").resolve())


def test_bad_choice_lists_the_choices(tmp_path):
    path = write_recipe(tmp_path, TINY_AE.replace('activation = "sigmoid"', 'activation = "swishy"'))
    with pytest.raises(ConfigError, match=r"model\.activation = 'swishy' is not one of: 'sigmoid'"):
        load_recipe(path)


def test_malformed_toml_names_the_file_and_line(tmp_path):
    path = write_recipe(tmp_path, "[model\nfamily = 1\n")
    with pytest.raises(ConfigError, match=r"recipe\.toml: malformed TOML: .*line 1"):
        read_toml(path)


def test_unknown_family_and_section(tmp_path):
    with pytest.raises(ConfigError, match="model.family = 'ae' is not one of"):
        load_recipe(write_recipe(tmp_path, TINY_AE.replace('"autoencoder"', '"ae"')))
    with pytest.raises(ConfigError, match=r"unknown section \[optim\]"):
        load_recipe(write_recipe(tmp_path, TINY_AE + "\n[optim]\nx = 1\n"))


def test_overrides_are_parsed_as_toml_values(tiny_recipe):
    assert parse_override("train.lr=1e-4") == (["train", "lr"], 1e-4)
    assert parse_override("model.hidden=[16, 4]") == (["model", "hidden"], [16, 4])
    assert parse_override("train.device=cpu") == (["train", "device"], "cpu")
    recipe = load_recipe(tiny_recipe, ["train.steps=7", "model.tied=true"])
    assert recipe.train.steps == 7 and recipe.model.tied is True
    with pytest.raises(ConfigError, match="unknown key 'train.stepz'"):
        load_recipe(tiny_recipe, ["train.stepz=7"])
    with pytest.raises(ConfigError, match="SECTION.NAME"):
        parse_override("steps=7")


def test_validation_rejects_impossible_values(tmp_path):
    with pytest.raises(ConfigError, match="train.batch_size must be positive"):
        load_recipe(write_recipe(tmp_path, TINY_AE.replace("batch_size = 32", "batch_size = 0")))
    with pytest.raises(ConfigError, match="code_activation = \"sigmoid\""):
        load_recipe(write_recipe(tmp_path, TINY_AE.replace("[data]", 'sparsity = "kl"\nsparsity_weight = 1.0\n[data]')))


def test_resolved_recipe_round_trips_through_toml(tiny_recipe, tmp_path):
    import tomllib

    recipe = load_recipe(tiny_recipe)
    text = dumps_toml(recipe.to_dict())
    assert tomllib.loads(text) == recipe.to_dict()


def test_every_bundled_recipe_is_valid():
    recipes = sorted((ROOT / "recipes").glob("*.toml"))
    assert recipes, "no recipes found"
    for path in recipes:
        # speech recipes read the corpora that `seqae data speech --out data/speech` (or data/vc) builds
        text = path.read_text()
        generated = "data/speech" in text or "data/vc" in text
        load_recipe(path, check_paths=not generated)


def test_override_paths_are_relative_to_the_current_folder(tmp_path, monkeypatch):
    import numpy as np

    (tmp_path / "recipes").mkdir()
    recipe = write_recipe(tmp_path / "recipes", TINY_AE)
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    assert load_recipe(recipe, ["data.source=x.npy"]).data.source == str((tmp_path / "x.npy").resolve())
