"""egs/decode_modes.sh: a recipe's default decoding modes are those its trained model can run,
so `run.sh --model ctc` decodes and benchmarks a CTC model instead of failing on at_beam."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from casnat.config import save_config
from casnat.testing import REPO_ROOT, tiny_config

pytestmark = pytest.mark.skipif(
    shutil.which("casnat") is None, reason="the casnat console script is not installed"
)


@pytest.mark.parametrize(
    "model_type,expected",
    [
        ("ctc", "ctc_greedy"),
        ("at", "ctc_greedy at_beam joint_ctc_at attention_rescoring"),
        # tiny_config gives the CASS-NAT model an AT ranker, hence the AT modes
        ("cassnat", "ctc_greedy at_beam joint_ctc_at attention_rescoring cassnat cassnat_esa"),
    ],
)
def test_default_modes_follow_the_saved_config(tmp_path, model_type, expected):
    exp = tmp_path / "exp"
    exp.mkdir()
    save_config(tiny_config(tmp_path, model_type), exp / "config.yaml")
    script = f'. "{REPO_ROOT / "egs" / "decode_modes.sh"}" && decode_modes "$0"'
    out = subprocess.run(
        ["bash", "-c", script, str(exp)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_missing_experiment_fails_with_its_path(tmp_path):
    script = f'. "{REPO_ROOT / "egs" / "decode_modes.sh"}" && decode_modes "$0"'
    out = subprocess.run(
        ["bash", "-c", script, str(tmp_path / "nope")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "nope" in out.stderr


def test_given_modes_are_kept_in_order_if_the_model_has_them(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    save_config(tiny_config(tmp_path, "ctc"), exp / "config.yaml")
    script = f'. "{REPO_ROOT / "egs" / "decode_modes.sh"}" && decode_modes "$0" ' + (
        "ctc_prefix_beam at_beam ctc_greedy cassnat"
    )
    out = subprocess.run(
        ["bash", "-c", script, str(exp)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ctc_prefix_beam ctc_greedy"
