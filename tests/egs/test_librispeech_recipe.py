"""egs/librispeech/run.sh on a tiny fake LibriSpeech: every stage, on a tiny 2-epoch model.

The fake corpus has the real layout
(``LibriSpeech/{part}/{spk}/{chapter}/{spk}-{chapter}-{utt}.flac`` + ``{spk}-{chapter}.trans.txt``,
upper-case transcripts) with short synthetic tones, so the
recipe's own commands run end to end; the data and exp dirs point into ``tmp_path``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from casnat.config import load_config, save_config
from casnat.testing import REPO_ROOT, tiny_config

RECIPE = REPO_ROOT / "egs" / "librispeech"
WORDS = ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "ZERO", "IT'S")
SPEAKERS = {"train-clean-100": ("19", "26"), "dev-clean": ("84",), "dev-other": ("116",),
            "test-clean": ("121",), "test-other": ("1089",)}

needs_cli = pytest.mark.skipif(shutil.which("casnat") is None or shutil.which("lhotse") is None,
                               reason="the casnat / lhotse console scripts are not installed")


def make_fake_librispeech(root: Path, utts_per_speaker: int = 3, seed: int = 0) -> Path:
    """A LibriSpeech-shaped corpus of 0.4-0.8 s tones under ``root``; returns root/LibriSpeech."""
    rng = np.random.default_rng(seed)
    corpus = root / "LibriSpeech"
    for part, speakers in SPEAKERS.items():
        for spk in speakers:
            chapter = "1000"
            d = corpus / part / spk / chapter
            d.mkdir(parents=True)
            lines = []
            for u in range(utts_per_speaker):
                utt = f"{spk}-{chapter}-{u:04d}"
                n = int(16000 * rng.uniform(0.4, 0.8))
                t = np.arange(n) / 16000
                x = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t)
                x += 0.02 * rng.standard_normal(n)
                sf.write(d / f"{utt}.flac", x.astype(np.float32), 16000)
                lines.append(f"{utt} {' '.join(rng.choice(WORDS, size=3))}")
            (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return corpus


def run_recipe(*args: str | Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(RECIPE / "run.sh"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("name", ["100h", "960h"])
def test_conf_files_load(name: str) -> None:
    cfg = load_config(RECIPE / "conf" / f"cassnat_{name}.yaml")
    enc = cfg.model.encoder
    assert (enc.num_layers, enc.d_model, enc.conv_kernel, enc.inter_ctc_layer) == (12, 512, 31, 6)
    nat = cfg.model.nat_decoder
    assert nat is not None and (nat.num_sa_layers, nat.num_mixed_layers) == (5, 2)
    assert cfg.model.at_decoder is not None and cfg.model.at_decoder.num_layers == 6
    assert (cfg.train.warmup_steps, cfg.train.peak_lr, cfg.train.accum_grad) == (15000, 1e-3, 2)
    assert cfg.train.max_epochs == 60 and cfg.train.grad_clip == 5.0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    """Stages 0-1 of the recipe on the fake corpus; returns (tmp root, data dir)."""
    if shutil.which("casnat") is None or shutil.which("lhotse") is None:
        pytest.skip("the casnat / lhotse console scripts are not installed")
    root = tmp_path_factory.mktemp("librispeech")
    corpus = make_fake_librispeech(root)
    data = root / "data"
    run_recipe("--stop-stage", 1, "--nj", 1, "--ngpu", 0, "--speed-perturb", "false",
               "--data-dir", data, "--exp-dir", root / "exp", corpus)
    return root, data


@needs_cli
def test_stages_0_1_write_manifests_and_features(prepared: tuple[Path, Path]) -> None:
    _, data = prepared
    for split in ("train", "train_clean_100", "dev", "dev_clean", "dev_other", "test_clean",
                  "test_other"):
        assert (data / "manifests" / f"cuts_{split}.jsonl.gz").is_file(), split
    train = CutSet.from_file(data / "fbank" / "cuts_train.jsonl.gz")
    assert len(train) == 6 and all(c.has_features for c in train)
    text = train[0].supervisions[0].text
    assert text == text.lower() and text.split()[0] in {w.lower() for w in WORDS}
    assert len(CutSet.from_file(data / "fbank" / "cuts_dev.jsonl.gz")) == 6  # dev-clean + dev-other
    assert (data / "fbank" / "cuts_test_other.jsonl.gz").is_file()


@pytest.fixture(scope="module")
def trained(prepared: tuple[Path, Path]) -> tuple[Path, Path, Path]:
    """Stage 2 with a tiny config of 2 epochs (so stage 3 has two to average); (root, data, exp)."""
    root, data = prepared
    conf = root / "tiny.yaml"
    save_config(tiny_config(Path("data/fbank"), "cassnat", max_epochs=2), conf)
    exp = root / "exp"
    run_recipe("--stage", 2, "--stop-stage", 2, "--ngpu", 0, "--config", conf,
               "--data-dir", data, "--exp-dir", exp, root / "LibriSpeech")
    return root, data, exp


@needs_cli
def test_stage_2_trains_a_few_steps(trained: tuple[Path, Path, Path]) -> None:
    _, data, exp = trained
    assert (exp / ".train.done").is_file()
    assert str(data / "fbank" / "cuts_train.jsonl.gz") in (exp / "train.yaml").read_text()
    assert (exp / "tokenizer" / "tokenizer.json").is_file()
    assert [p.name for p in sorted(exp.glob("epoch-*.pt"))] == ["epoch-1.pt", "epoch-2.pt"]


def _stage_args(root: Path, data: Path, exp: Path, first: int, last: int) -> list[str | Path]:
    # one test set and two modes keep it fast; the full lists are the stub test's (test_stages.py)
    return ["--stage", first, "--stop-stage", last, "--ngpu", 0, "--data-dir", data,
            "--exp-dir", exp, "--test-sets", "test_clean", "--bench-sets", "test_clean",
            "--modes", "ctc_greedy cassnat", "--results", root / "RESULTS.md",
            root / "LibriSpeech"]


@needs_cli
def test_stages_3_4_average_on_dev_and_decode(trained: tuple[Path, Path, Path]) -> None:
    root, data, exp = trained
    run_recipe(*_stage_args(root, data, exp, 3, 4))
    select = (exp / "avg_select.txt").read_text()
    assert "cuts_dev_clean:ctc_greedy" in select and "cuts_dev_other:cassnat" in select
    assert "selected: average of the last" in select
    assert (exp / "avg-dev.pt").is_file()
    for mode in ("ctc_greedy", "cassnat"):
        assert (exp / f"decode_test_clean_{mode}" / "wer.txt").is_file(), mode


@needs_cli
def test_stage_5_writes_results(trained: tuple[Path, Path, Path]) -> None:
    root, data, exp = trained
    bench = subprocess.run(["casnat", "bench-decode", "--help"], capture_output=True, text=True)
    if bench.returncode != 0:
        pytest.skip("this casnat has no bench-decode subcommand yet")
    if not (exp / "avg-dev.pt").is_file():
        run_recipe(*_stage_args(root, data, exp, 3, 4))
    run_recipe(*_stage_args(root, data, exp, 5, 5))
    results = (root / "RESULTS.md").read_text()
    assert results.startswith("# librispeech: cassnat_100h (")
    assert (exp / "avg_select.txt").read_text() in results
    assert (exp / "bench_test_clean.md").read_text() in results


def test_missing_corpus_is_named(tmp_path: Path) -> None:
    from casnat.data.corpora.librispeech import prepare_librispeech

    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_librispeech(tmp_path / "nowhere", tmp_path / "out")
