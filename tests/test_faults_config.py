"""Config and manifest faults through the command line: one line on stderr naming the file (and
line or key) and the problem, exit status 2, no traceback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from casnat.cli import main
from casnat.config import save_config
from casnat.testing import make_tone_cuts, tiny_config


def _one_error_line(capsys, cmd: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"casnat {cmd}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("train:\n  max_steps: 3\n   peak_lr: [1\n", r"not valid YAML: line 3, column 11"),
        ("train:\n  max_steps: three\n", r"train\.max_steps: expected an integer, got 'three'"),
        ("train:\n  lr_schedule: linear\n", r"train\.lr_schedule: expected one of 'noam', 'cos"),
        ("train:\n  amp: 'yes'\n", r"train\.amp: expected true/false, got 'yes'"),
        ("data:\n  max_duration: lots\n", r"data\.max_duration: expected a number, got 'lots'"),
        ("data:\n  augment:\n    gain_db: [1]\n", r"augment\.gain_db: expected a list of 2"),
        ("model: [1, 2]\n", r"model: expected a mapping"),
    ],
    ids=["malformed", "int", "literal", "bool", "float", "tuple", "section"],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, yaml_text, expected):
    import re

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    rc = main(["train", "--config", str(cfg), "--exp-dir", str(tmp_path / "exp")])
    line = _one_error_line(capsys, "train")
    assert rc == 2 and str(cfg) in line and re.search(expected, line), line


def test_yaml_numbers_without_a_dot_still_load(tmp_path):
    """YAML 1.1 reads ``1e-3`` as a string; a float field takes it as the number it means."""
    from casnat.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  peak_lr: 1e-3\n  max_steps: null\n")
    assert load_config(cfg).train.peak_lr == 0.001


@pytest.fixture
def manifest_lines(tmp_path) -> list[str]:
    cuts = make_tone_cuts(tmp_path)
    cuts.to_file(tmp_path / "good.jsonl")
    return (tmp_path / "good.jsonl").read_text().splitlines()


def _edit(line: str, fn) -> str:
    d = json.loads(line)
    fn(d)
    return json.dumps(d)


def _bad_manifests(lines: list[str]) -> dict[str, tuple[list[str], str]]:
    def other_rec(d):
        d["supervisions"][0]["recording_id"] = "someone-else"

    def too_long(d):
        d["supervisions"][0]["duration"] = 99.0

    def no_audio(d):
        del d["recording"]

    return {
        "malformed_json": (lines[:2] + ['{"id": "x", "dur'] + lines[2:], r":3: not valid JSON"),
        "other_recording": (
            [lines[0], _edit(lines[1], other_rec)] + lines[2:],
            r":2: .*mismatched recording_id",
        ),
        "supervision_past_end": (
            [lines[0], _edit(lines[1], too_long)] + lines[2:],
            r":2: cut tone1: supervision tone1 spans 0\.00-99\.00 s",
        ),
        "no_recording": ([lines[0], _edit(lines[1], no_audio)], r":2: .*neither a recording"),
        "duplicate_id": (lines + [lines[0]], r":5: duplicate cut id tone0 \(first on line 1\)"),
        "not_an_object": (lines[:1] + ["[1, 2]"], r":2: expected a JSON object"),
    }


MANIFEST_FAULTS = [
    "malformed_json",
    "other_recording",
    "supervision_past_end",
    "no_recording",
    "duplicate_id",
    "not_an_object",
]


@pytest.mark.parametrize("fault", MANIFEST_FAULTS)
def test_bad_manifest_in_decode_is_one_line_naming_file_and_line(
    tmp_path, capsys, manifest_lines, fault
):
    import re

    faults = _bad_manifests(manifest_lines)
    assert sorted(faults) == sorted(MANIFEST_FAULTS)
    lines, expected = faults[fault]
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    rc = main(
        [
            "decode",
            "--exp-dir",
            str(tmp_path),
            "--cuts",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    line = _one_error_line(capsys, "decode")
    assert rc == 2 and str(path) in line and re.search(expected, line), line
    assert not (tmp_path / "out").exists()  # stopped before decoding anything


def test_bad_manifest_in_training_is_one_line_naming_the_data_key(tmp_path, capsys, manifest_lines):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(manifest_lines[:1] + ["{not json"] + manifest_lines[1:]) + "\n")
    cfg = tiny_config(tmp_path)
    from dataclasses import replace

    cfg = replace(cfg, data=replace(cfg.data, train_cuts=str(path), dev_cuts=""))
    save_config(cfg, tmp_path / "cfg.yaml")
    rc = main(
        [
            "train",
            "--config",
            str(tmp_path / "cfg.yaml"),
            "--exp-dir",
            str(tmp_path / "exp"),
            "--device",
            "cpu",
        ]
    )
    line = _one_error_line(capsys, "train")
    assert rc == 2 and f"data.train_cuts: {path}:2: not valid JSON" in line, line


def test_truncated_gzip_manifest_is_one_line(tmp_path, capsys, manifest_lines):
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(manifest_lines * 50) + "\n")
    path.write_bytes(path.read_bytes()[:200])
    rc = main(
        [
            "decode",
            "--exp-dir",
            str(tmp_path),
            "--cuts",
            str(path),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    line = _one_error_line(capsys, "decode")
    assert rc == 2 and str(path) in line, line


def test_valid_manifest_passes_the_check(tmp_path, manifest_lines):
    from casnat.data.validate import check_cuts_manifest

    path = Path(tmp_path / "ok.jsonl")
    path.write_text("\n".join(manifest_lines) + "\n\n")
    assert check_cuts_manifest(path) == 4
