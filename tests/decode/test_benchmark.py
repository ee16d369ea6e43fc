"""casnat bench-decode (casnat.decode.benchmark) on a randomly initialized tiny CASS-NAT model
and four short tones."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import MonoCut

import casnat.decode.cassnat
from casnat.atomic import atomic_torch_save
from casnat.cli import main
from casnat.config import save_config
from casnat.data.tokenizer import Tokenizer
from casnat.decode.benchmark import Utterance, make_batches
from casnat.decode.modes import recipe_default_modes
from casnat.models.asr import ASRModel
from casnat.testing import tiny_config

TEXTS = ("one two", "three", "four five six", "seven")
# Until the branch adding casnat.decode.cassnat's phase marks is merged, the profile cannot name
# the CASS-NAT phases; the check below then runs in full. Remove this once merged.
CASSNAT_MARKED = "phase(" in inspect.getsource(casnat.decode.cassnat)


def make_random_experiment(exp_dir: Path, texts: tuple[str, ...]) -> None:
    """An exp dir laid out like casnat.train.trainer's: config.yaml, tokenizer/, epoch-1.pt."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(exp_dir, "cassnat")
    save_config(cfg, exp_dir / "config.yaml")
    tok = Tokenizer.train(texts, cfg.tokenizer, exp_dir / "tokenizer")
    torch.manual_seed(0)
    model = ASRModel(cfg.model, tok.vocab_size, cfg.features.num_mel_bins)
    atomic_torch_save({"model": model.state_dict()}, exp_dir / "epoch-1.pt")


def make_tone_cuts(out_dir: Path) -> Path:
    """Four 0.4-0.7 s tones as a cuts manifest without features (the tool extracts them)."""
    rng = np.random.default_rng(0)
    cuts = []
    for i, text in enumerate(TEXTS):
        t = np.arange(int(16000 * (0.4 + 0.1 * i))) / 16000
        x = 0.3 * np.sin(2 * np.pi * (200 + 80 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = out_dir / f"tone{i}.wav"
        sf.write(path, x.astype(np.float32), 16000)
        rec = Recording.from_file(path)
        sup = SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                 text=text)
        cuts.append(MonoCut(id=rec.id, start=0.0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    manifest = out_dir / "cuts_test.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    make_random_experiment(root / "exp", TEXTS)
    return root / "exp", make_tone_cuts(root)


def test_table_has_every_mode_and_profile(bench_inputs: tuple[Path, Path], tmp_path: Path,
                                          capsys) -> None:
    exp, cuts = bench_inputs
    out = tmp_path / "bench.md"
    rc = main(["bench-decode", "--exp-dir", str(exp), "--cuts", str(cuts), "--beam", "2",
               "--num-samples", "3", "--num-threads", "1", "--batch-size", "3", "--out", str(out),
               "--profile"])
    assert rc == 0
    table = out.read_text()
    assert table == capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| mode | WER % | RTF b=1 | utt/s b=1 | RTF batched")
    defaults = [m.name for m in recipe_default_modes()]  # bench-decode's modes unless told
    by_mode = {r.split("|")[1].strip(): r for r in rows[1 : 1 + len(defaults)]}
    assert list(by_mode) == defaults and {"ctc_greedy", "at_beam", "cassnat"} <= set(by_mode)
    assert by_mode["at_beam"].rstrip(" |").endswith("1.0x")
    assert "encoder" in table and "CTC head" in table and "AT decoder steps" in table
    if not CASSNAT_MARKED:
        pytest.xfail("decode/cassnat.py has no phase marks yet (issue 12, another branch)")
    assert "alignment sampling" in table and "NAT decoder" in table and "AT decoder steps" in table


def test_make_batches_respects_limits() -> None:
    utts = [Utterance(f"u{i}", "", torch.zeros(n, 80)) for i, n in enumerate([50, 80, 20, 60])]
    batches = make_batches(utts, batch_size=2, max_frames=150, device=torch.device("cpu"))
    assert [[u.cut_id for u in g] for g, _, _ in batches] == [["u1"], ["u3", "u0"], ["u2"]]
    _, feats, lens = batches[1]
    assert feats.shape == (2, 60, 80) and lens.tolist() == [60, 50]


def test_unknown_mode_is_one_line_naming_the_known_ones(bench_inputs, capsys) -> None:
    exp, cuts = bench_inputs
    rc = main(["bench-decode", "--exp-dir", str(exp), "--cuts", str(cuts),
               "--modes", "ctc_greedy", "cassnet"])
    assert rc == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "'cassnet'" in err[0] and "cassnat_esa" in err[0]
