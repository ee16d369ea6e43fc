"""YAML experiment configs: keys are dataclass fields, mistakes are named with the file and key,
and a saved config loads back equal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from casnat.config import (
    ATDecoderConfig,
    ConfigError,
    EncoderConfig,
    ExperimentConfig,
    SpecAugmentConfig,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_yaml_sets_nested_fields_and_keeps_defaults_for_the_rest(tmp_path):
    cfg = load_config(_write(tmp_path, (
        "model:\n"
        "  type: cassnat\n"
        "  encoder: {d_model: 64, num_layers: 3}\n"
        "  nat_decoder: {num_sa_layers: 1}\n"
        "train: {peak_lr: 0.002, max_steps: 7}\n"
    )))
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.model.type == "cassnat"
    assert cfg.model.encoder == EncoderConfig(d_model=64, num_layers=3)
    assert cfg.model.nat_decoder is not None and cfg.model.nat_decoder.num_sa_layers == 1
    assert cfg.model.at_decoder is None  # Optional section absent: stays None
    assert (cfg.train.peak_lr, cfg.train.max_steps) == (0.002, 7)
    assert cfg.data == ExperimentConfig().data


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == ExperimentConfig()


def test_unknown_key_is_named_with_the_file_and_section(tmp_path):
    path = _write(tmp_path, "model:\n  encoder:\n    d_modle: 64\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "model.encoder" in msg and "'d_modle'" in msg
    assert "d_model" in msg  # the valid keys are listed


def test_key_at_the_wrong_nesting_level_is_unknown_there(tmp_path):
    """``d_model`` belongs under model.encoder; written under model it is rejected, not ignored."""
    path = _write(tmp_path, "model:\n  d_model: 64\n")
    with pytest.raises(ConfigError, match=r"model: unknown key 'd_model'"):
        load_config(path)


def test_a_scalar_where_a_section_belongs_is_an_error(tmp_path):
    path = _write(tmp_path, "model:\n  encoder: 64\n")
    with pytest.raises(ConfigError, match=r"model\.encoder: expected a mapping, got int"):
        load_config(path)


def test_optional_sections_can_be_switched_off_and_on(tmp_path):
    cfg = load_config(_write(tmp_path, "data:\n  spec_augment: null\nmodel:\n  at_decoder: {}\n"))
    assert cfg.data.spec_augment is None  # default is on; null turns it off
    assert ExperimentConfig().data.spec_augment == SpecAugmentConfig()
    assert cfg.model.at_decoder == ATDecoderConfig()  # an empty mapping: "on, with defaults"


def test_missing_file_and_bad_yaml_are_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    path = _write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        load_config(path)


@dataclass(frozen=True)
class _WithTuple:
    sizes: tuple[int, ...] = (1, 2)
    inner: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)


def test_tuple_fields_become_tuples_and_optional_sections_nest():
    """YAML has only lists; a tuple-typed field must come back a tuple (hashable, frozen)."""
    cfg = from_dict(_WithTuple, {"sizes": [3, 4, 5], "inner": {"num_time_masks": 0}})
    assert cfg.sizes == (3, 4, 5) and isinstance(cfg.sizes, tuple)
    assert cfg.inner == SpecAugmentConfig(num_time_masks=0)
    assert from_dict(_WithTuple, {"inner": None}).inner is None
    with pytest.raises(ConfigError, match=r"where\.inner: unknown key 'x'"):
        from_dict(_WithTuple, {"inner": {"x": 1}}, where="where")
    # and through YAML, as save_config writes it: the tuple comes back a tuple
    assert from_dict(_WithTuple, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_save_then_load_round_trips(tmp_path):
    base = load_config(_write(tmp_path, (
        "tokenizer: {kind: char}\n"
        "data: {spec_augment: null, max_duration: 12.5}\n"
        "model: {type: at, at_decoder: {num_layers: 2}, encoder: {inter_ctc_layer: 2}}\n"
        "train: {max_minutes: 3.5, lr_schedule: cosine}\n"
    )))
    out = tmp_path / "saved.yaml"
    save_config(base, out)
    assert load_config(out) == base
    assert load_config(out) != ExperimentConfig()
