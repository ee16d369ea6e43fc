"""egs/stages.sh: every recipe runs the same stages 1-5, through the ``casnat`` CLI only.

Each recipe is copied into ``tmp_path`` (with the egs/*.sh helpers) and run with a stub ``casnat``
(and ``python``) first on PATH that logs its arguments and writes the few files a later stage
reads, so the test sees exactly the commands each stage issues, in seconds and without a model.
The fsdd commands are compared word for word with what the recipe issued before the stages were
shared, so the same figures come out of the same checkpoints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from casnat.testing import REPO_ROOT

ALL_MODES = "ctc_greedy at_beam cassnat cassnat_esa"

STUB = r"""#!/usr/bin/env bash
# Logs "<name> <args>" and fakes the outputs later stages read.
echo "$(basename "$0") $*" >> "$STUB_LOG"
[ "$(basename "$0")" = casnat ] || exit 0
sub=$1; shift
case $sub in
  decode) for a in "$@"; do [ "$a" = --list-modes ] && echo "$STUB_MODES"; done ;;
  average) echo "| n averaged | stub |" ;;
  report) echo "| report stub |" ;;
  bench-decode)
    while [ $# -gt 0 ]; do
      if [ "$1" = --out ]; then echo "| bench stub |" > "$2"; fi
      shift
    done ;;
  bench-robust)
    while [ $# -gt 0 ]; do
      if [ "$1" = --out ]; then echo "| robust stub |" > "$2"; fi
      shift
    done ;;
esac
exit 0
"""


def _copy_recipe(root: Path, name: str) -> Path:
    egs = root / "egs"
    egs.mkdir()
    for helper in (REPO_ROOT / "egs").glob("*.sh"):  # parse_options, decode_modes, stages
        shutil.copy(helper, egs)
    shutil.copytree(
        REPO_ROOT / "egs" / name, egs / name, ignore=shutil.ignore_patterns("data", "exp", "*.md")
    )
    return egs / name


class StubbedRecipe:
    """A recipe copy whose run.sh sees a logging ``casnat`` and ``python``."""

    def __init__(self, root: Path, name: str, modes: str = ALL_MODES) -> None:
        self.dir = _copy_recipe(root, name)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for tool in ("casnat", "python"):
            (bin_dir / tool).write_text(STUB)
            (bin_dir / tool).chmod(0o755)
        self.log = root / "commands.log"
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "STUB_LOG": str(self.log), "STUB_MODES": modes}

    def run(self, *args: str, cwd: Path | None = None) -> list[str]:
        """Run run.sh; returns the commands it issued (``--list-modes`` queries left out)."""
        self.log.unlink(missing_ok=True)
        proc = subprocess.run(["bash", str(self.dir / "run.sh"), *args], cwd=cwd or self.dir,
                              env=self.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [c for c in lines if "--list-modes" not in c]


def test_every_recipe_sources_the_shared_stages_and_keeps_none_of_its_own() -> None:
    for run_sh in sorted((REPO_ROOT / "egs").glob("*/run.sh")):
        text = run_sh.read_text()
        assert '. "$(dirname "$0")/../stages.sh"' in text, run_sh
        assert text.rstrip().endswith("run_stages"), run_sh
        for own in ("casnat features", "casnat average", "casnat decode", "casnat report",
                    "bench-decode", "tools/"):
            assert own not in text, f"{run_sh} issues '{own}' itself"


def test_fsdd_stages_issue_the_commands_they_did_before(tmp_path: Path) -> None:
    recipe = StubbedRecipe(tmp_path, "fsdd")
    cmds = recipe.run("--stage", "1", "/nowhere/fsdd")
    fb, exp = "data/fbank", "exp/cassnat"
    conf = "--config conf/cassnat.yaml"  # stage 1's front end is the model's features: section
    expected = [f"casnat features --cuts data/manifests/cuts_train.jsonl.gz --out-dir {fb} "
                f"--speed-perturb --num-jobs 2 {conf}"]
    expected += [f"casnat features --cuts data/manifests/cuts_{p}.jsonl.gz --out-dir {fb} "
                 f"--num-jobs 2 {conf}" for p in ("dev", "dev_isolated", "test", "test_isolated")]
    expected += [
        f"casnat train --config conf/cassnat.yaml --exp-dir {exp} --resume",
        f"casnat average --exp-dir {exp} --last 5 --out {exp}/avg-dev.pt --select-on "
        f"{fb}/cuts_dev.jsonl.gz {fb}/cuts_dev_isolated.jsonl.gz --select-modes ctc_greedy cassnat",
    ]
    expected += [f"casnat decode --exp-dir {exp} --checkpoint {exp}/avg-dev.pt --cuts "
                 f"{fb}/cuts_{p}.jsonl.gz --mode {m} --out-dir {exp}/decode_{p}_{m}"
                 for p in ("test", "test_isolated") for m in ALL_MODES.split()]
    expected += [f"casnat bench-decode --exp-dir {exp} --checkpoint {exp}/avg-dev.pt --cuts "
                 f"{fb}/cuts_{p}.jsonl.gz --modes {ALL_MODES} --num-threads 2 --profile "
                 f"--out {exp}/bench_{p}.md" for p in ("test", "test_isolated")]
    expected += [f"casnat report {exp}"]
    expected += [f"casnat bench-robust --exp-dir {exp} --checkpoint {exp}/avg-dev.pt --cuts "
                 f"{fb}/cuts_{p}.jsonl.gz --modes ctc_greedy cassnat --level-dbfs model on "
                 f"--num-threads 2 --out {exp}/robust_{p}.md" for p in ("test", "test_isolated")]
    assert cmds == expected
    assert (recipe.dir / "data" / "fbank" / ".done").is_file()
    assert (recipe.dir / exp / ".train.done").is_file()
    assert (recipe.dir / exp / "avg_select.txt").read_text() == "| n averaged | stub |\n"
    results = (recipe.dir / "RESULTS.md").read_text()
    assert results.startswith("# fsdd: cassnat (")
    assert "| report stub |" in results and results.count("| bench stub |") == 2
    assert "## test_isolated: WER and decoding speed" in results
    assert not list(recipe.dir.glob("*.tmp"))


def test_stage_6_benchmarks_robustness_on_each_test_set_beside_the_results(
    tmp_path: Path,
) -> None:
    recipe = StubbedRecipe(tmp_path, "fsdd", modes="ctc_greedy")
    cmds = recipe.run("--stage", "6", "--model", "ctc", "/nowhere/fsdd")
    assert [c.split()[1] for c in cmds] == ["bench-robust", "bench-robust"]
    assert all("--modes ctc_greedy --level-dbfs model on" in c for c in cmds)  # no cassnat head
    assert [c.split("--cuts ")[1].split()[0] for c in cmds] == [
        "data/fbank/cuts_test.jsonl.gz", "data/fbank/cuts_test_isolated.jsonl.gz"]
    text = (recipe.dir / "RESULTS_ctc_robustness.md").read_text()
    assert text.startswith("# fsdd: ctc, robustness (") and text.count("| robust stub |") == 2
    assert "## test_isolated: WER % under level, noise" in text
    assert not (recipe.dir / "RESULTS_ctc.md").exists()  # stage 5's file is not touched
    assert not list(recipe.dir.glob("*.tmp"))


def test_done_markers_skip_stages_1_and_2_and_the_stage_range_is_kept(tmp_path: Path) -> None:
    recipe = StubbedRecipe(tmp_path, "fsdd", modes="ctc_greedy")
    recipe.run("--stage", "1", "--stop-stage", "2", "/nowhere/fsdd")
    assert recipe.run("--stage", "1", "--stop-stage", "2", "/nowhere/fsdd") == []
    cmds = recipe.run("--stage", "4", "--stop-stage", "4", "--model", "ctc", "/nowhere/fsdd")
    assert [c.split()[1] for c in cmds] == ["decode", "decode"]  # auto modes: ctc_greedy only
    assert all("--mode ctc_greedy --out-dir exp/ctc/decode_" in c for c in cmds)


def test_synth_en_splits_test_by_voice_and_decodes_the_splits(tmp_path: Path) -> None:
    recipe = StubbedRecipe(tmp_path, "synth_en")
    cmds = recipe.run("--stage", "1", "--model", "ctc", "/nowhere/text")
    tools = [c.split()[0] + " " + c.split()[1] for c in cmds]
    assert tools[:4] == ["casnat features"] * 3 + ["python local/split_by_voice.py"]
    assert cmds[3] == "python local/split_by_voice.py data/fbank/cuts_test.jsonl.gz"
    avg = next(c for c in cmds if c.startswith("casnat average"))
    assert "--select-on data/fbank/cuts_dev.jsonl.gz --select-modes" in avg
    decoded = {c.split("--out-dir ")[1] for c in cmds if c.startswith("casnat decode")}
    assert decoded == {f"exp/ctc/decode_{p}_{m}" for p in ("test", "test_seen", "test_unseen")
                       for m in ALL_MODES.split()}
    bench = [c for c in cmds if c.startswith("casnat bench-decode")]
    assert len(bench) == 1 and "--cuts data/fbank/cuts_test.jsonl.gz" in bench[0]
    assert (recipe.dir / "RESULTS_ctc.md").read_text().startswith("# synth_en: ctc (")


def test_librispeech_has_the_same_stages_3_and_5(tmp_path: Path) -> None:
    recipe = StubbedRecipe(tmp_path, "librispeech")
    cmds = recipe.run("--stage", "1", "--data-dir", "ls", "--results", "out/R.md",
                      "/nowhere/LibriSpeech", cwd=tmp_path)
    fb = f"{tmp_path}/ls/fbank"
    feats = [c for c in cmds if c.startswith("casnat features")]
    assert feats[0] == (f"casnat features --cuts {tmp_path}/ls/manifests/cuts_train.jsonl.gz "
                        f"--out-dir {fb} --speed-perturb --num-jobs 2 "
                        "--config conf/cassnat_100h.yaml")
    # cuts_dev (the validation set) comes from casnat prepare's manifest, not a recombination
    assert [c.split()[3] for c in feats[1:]] == [
        f"{tmp_path}/ls/manifests/cuts_{p}.jsonl.gz"
        for p in ("dev", "dev_clean", "dev_other", "test_clean", "test_other")]
    assert not any(c.startswith(("lhotse", "cp")) for c in cmds)
    avg = next(c for c in cmds if c.startswith("casnat average"))
    assert avg == (f"casnat average --exp-dir exp/cassnat_100h --last 10 --out "
                   f"exp/cassnat_100h/avg-dev.pt --select-on {fb}/cuts_dev_clean.jsonl.gz "
                   f"{fb}/cuts_dev_other.jsonl.gz --select-modes ctc_greedy cassnat "
                   "--device cuda")
    decodes = [c for c in cmds if c.startswith("casnat decode")]
    assert len(decodes) == 16
    assert all("--checkpoint exp/cassnat_100h/avg-dev.pt" in c
               and c.endswith("--device cuda --num-samples 16") for c in decodes)
    bench = [c for c in cmds if c.startswith("casnat bench-decode")]
    assert [c.split("--out ")[1].split()[0] for c in bench] == [
        "exp/cassnat_100h/bench_test_clean.md", "exp/cassnat_100h/bench_test_other.md"]
    results = (tmp_path / "out" / "R.md").read_text()
    assert results.startswith("# librispeech: cassnat_100h (") and "device cuda" in results
    assert results.count("| bench stub |") == 2 and "| n averaged | stub |" in results
    # per-set feature markers: only a set whose marker is gone is extracted again
    (tmp_path / "ls" / "fbank" / ".done_dev_other").unlink()
    again = recipe.run("--stage", "1", "--stop-stage", "2", "--data-dir", "ls",
                       "/nowhere/LibriSpeech", cwd=tmp_path)
    assert [c.split()[3] for c in again] == [f"{tmp_path}/ls/manifests/cuts_dev_other.jsonl.gz"]


def test_librispeech_960h_trains_on_the_960h_set_and_writes_its_own_results(
    tmp_path: Path,
) -> None:
    recipe = StubbedRecipe(tmp_path, "librispeech")
    cmds = recipe.run("--stage", "1", "--config-name", "960h", "--ngpu", "0", "/nowhere/LS")
    assert cmds[0] == ("casnat features --cuts data/manifests/cuts_train_960.jsonl.gz "
                       "--out-dir data/fbank --num-jobs 2 --config conf/cassnat_960h.yaml")
    # no speed perturbation for 960h
    train = next(c for c in cmds if c.startswith("casnat train"))
    assert train == ("casnat train --config exp/cassnat_960h/train.yaml "
                     "--exp-dir exp/cassnat_960h --resume --device cpu")
    assert "cuts_train_960" in (recipe.dir / "exp" / "cassnat_960h" / "train.yaml").read_text()
    assert (recipe.dir / "RESULTS_cassnat_960h.md").is_file()
    assert not (recipe.dir / "RESULTS.md").exists()


@pytest.mark.parametrize("name", ["fsdd", "synth_en", "librispeech"])
def test_unknown_option_is_named(tmp_path: Path, name: str) -> None:
    recipe = StubbedRecipe(tmp_path, name)
    proc = subprocess.run(["bash", str(recipe.dir / "run.sh"), "--stages", "1", "/x"],
                          env=recipe.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "unknown option --stages" in proc.stderr
