"""The corpus argument of egs/fsdd and egs/synth_en may be relative to where the user calls run.sh.

The README's quickstart runs ``egs/synth_en/run.sh ../shared/data/text`` from the repository root,
while run.sh works inside its own directory; stage 0 must still find the corpus, and a wrong path
must be named as the user meant it. The recipe is copied into ``tmp_path`` so that its ``data/``
outputs and ``.done`` markers never land in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from casnat.testing import REPO_ROOT, shared_data_dir

needs_cli = pytest.mark.skipif(
    shutil.which("casnat") is None, reason="the casnat console script is not installed"
)

# recipe -> (corpus under the shared data dir, stage-0 size options, engine it needs)
RECIPES = {
    "fsdd": ("fsdd", ["--num-train", "4"], None),
    "synth_en": ("text", ["--num-train", "2", "--num-dev", "1", "--num-test", "2"], "espeak-ng"),
}


def _copy_recipe(root: Path, name: str) -> Path:
    egs = root / "egs"
    egs.mkdir()
    for helper in (REPO_ROOT / "egs").glob("*.sh"):  # parse_options.sh, decode_modes.sh
        shutil.copy(helper, egs)
    shutil.copytree(
        REPO_ROOT / "egs" / name, egs / name, ignore=shutil.ignore_patterns("data", "exp")
    )
    return egs / name


def _stage0(recipe: Path, cwd: Path, corpus_arg: str, opts: list[str]):
    return subprocess.run(
        [
            "bash",
            os.path.relpath(recipe / "run.sh", cwd),
            "--stage",
            "0",
            "--stop-stage",
            "0",
            *opts,
            corpus_arg,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_cli
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_relative_corpus_path_is_taken_from_the_callers_directory(tmp_path, name):
    sub, opts, engine = RECIPES[name]
    shared = shared_data_dir()
    if shared is None or not (shared / sub).exists():
        pytest.skip(f"shared data not found ({sub}): set CASNAT_SHARED_DATA")
    if engine is not None and shutil.which(engine) is None:
        pytest.skip(f"{engine} not installed (egs/synth_en/local/install_tts.sh)")
    recipe = _copy_recipe(tmp_path, name)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = _stage0(recipe, cwd, os.path.relpath(shared / sub, cwd), opts)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (recipe / "data" / "manifests" / "cuts_train.jsonl.gz").is_file()
    assert (recipe / "data" / "manifests" / ".done").is_file()


@needs_cli
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_missing_relative_corpus_path_is_named_as_given(tmp_path, name):
    recipe = _copy_recipe(tmp_path, name)
    proc = _stage0(recipe, tmp_path, "no/such/corpus", RECIPES[name][1])
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert err and str(tmp_path / "no" / "such" / "corpus") in err[-1]
    assert not (recipe / "data" / "manifests" / ".done").exists()
