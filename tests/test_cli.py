"""The ``casnat`` command line end to end: user errors are one line, and prepare -> train ->
average -> decode -> transcribe works on real speech (a tiny FSDD subset)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casnat.cli import main
from casnat.config import save_config
from casnat.testing import fsdd_dir, tiny_config


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_docstring_lists_every_subcommand():
    import casnat.cli

    for name in casnat.cli.COMMANDS:
        assert f"    casnat {name} " in casnat.cli.__doc__, name
    assert "bench-decode" in casnat.cli.COMMANDS


def test_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--exp-dir", str(tmp_path)]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "nope.yaml" in err[0]


def test_unknown_config_key_is_named(tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text("model:\n  encoder:\n    d_modle: 10\n")
    assert main(["train", "--config", str(conf), "--exp-dir", str(tmp_path / "exp")]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "d_modle" in err[0] and "bad.yaml" in err[0]


def test_train_entry_point_does_not_import_the_cli(tmp_path):
    """``torchrun -m casnat.bin.train`` shares the logging set-up and error guard with ``casnat``
    through casnat.bin._common, not by importing casnat.cli (nothing imports it)."""
    code = (
        "import sys\n"
        "from casnat.bin import train\n"
        f"rc = train.main(['--config', {str(tmp_path / 'nope.yaml')!r}, '--exp-dir', 'x'])\n"
        "assert rc == 2, rc\n"
        "assert 'casnat.cli' not in sys.modules, 'casnat.bin.train imported casnat.cli'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nope.yaml" in proc.stderr  # the user error, as one line


def test_missing_corpus_path_is_one_line(tmp_path, capsys):
    assert main(["prepare", "fsdd", str(tmp_path / "no_corpus"), str(tmp_path / "out")]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no_corpus" in err[0]


def test_missing_train_manifest_is_named(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "nowhere")
    save_config(cfg, tmp_path / "c.yaml")
    assert (
        main(["train", "--config", str(tmp_path / "c.yaml"), "--exp-dir", str(tmp_path / "e")]) == 2
    )
    err = _err_lines(capsys)
    assert len(err) == 1 and "cuts_train.jsonl.gz" in err[0]


@pytest.fixture(scope="module")
def trained_exp(tiny_fsdd, tmp_path_factory):
    """A tiny CASS-NAT (+AT, +CTC) model trained for a few steps through the CLI."""
    tmp = tmp_path_factory.mktemp("cli")
    conf = tmp / "conf.yaml"
    save_config(tiny_config(tiny_fsdd, "cassnat", max_steps=6, max_epochs=2), conf)
    exp = tmp / "exp"
    assert main(["train", "--config", str(conf), "--exp-dir", str(exp), "--device", "cpu"]) == 0
    assert main(["average", "--exp-dir", str(exp), "--last", "2"]) == 0
    return exp


def test_average_selects_the_count_on_dev(trained_exp, tiny_fsdd, tmp_path, capsys):
    """--select-on decodes the average of the newest 1..N checkpoints and keeps the n with the
    fewest dev word errors (ties: the larger n)."""
    import torch

    from casnat.atomic import atomic_torch_save
    from casnat.checkpoint import epoch_checkpoints

    exp = tmp_path / "exp"
    shutil.copytree(trained_exp, exp)
    # A second, newer epoch checkpoint: the trained weights plus noise, so averaging 1 or 2
    # gives different models.
    last = epoch_checkpoints(exp)[-1]
    state = torch.load(last, weights_only=True)["model"]
    g = torch.Generator().manual_seed(0)
    noisy = {k: v + 0.5 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in state.items()}
    atomic_torch_save({"model": noisy}, exp / "epoch-99.pt")
    out = tmp_path / "avg-sel.pt"
    dev = str(tiny_fsdd / "cuts_test.jsonl.gz")
    rc = main(["average", "--exp-dir", str(exp), "--last", "2", "--out", str(out),
               "--select-on", dev, "--select-modes", "ctc_greedy", "cassnat"])
    assert rc == 0
    rows = [ln.split("|") for ln in capsys.readouterr().out.splitlines()
            if ln.startswith("| 1 ") or ln.startswith("| 2 ")]
    totals = {int(r[1]): int(r[-2]) for r in rows}
    assert sorted(totals) == [1, 2]
    for r in rows:  # the total is the sum of the per-(set, mode) columns
        assert int(r[-2]) == int(r[2]) + int(r[3])
    want = 2 if totals[2] <= totals[1] else 1
    saved = torch.load(out, weights_only=True)
    assert saved["averaged"] == [p.name for p in epoch_checkpoints(exp)[-want:]]


def test_average_select_on_missing_manifest_is_one_line(trained_exp, tmp_path, capsys):
    rc = main(["average", "--exp-dir", str(trained_exp), "--last", "2", "--out",
               str(tmp_path / "a.pt"), "--select-on", str(tmp_path / "no_dev.jsonl.gz")])
    assert rc == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no_dev.jsonl.gz" in err[0]
    assert not (tmp_path / "a.pt").exists()


def test_decode_list_modes_reads_the_saved_config(tmp_path, capsys):
    """No checkpoint needed: a CTC experiment lists only the CTC modes, and decode without
    --cuts/--out-dir (and without --list-modes) is a one-line error."""
    exp = tmp_path / "exp"
    exp.mkdir()
    save_config(tiny_config(tmp_path, "ctc"), exp / "config.yaml")
    assert main(["decode", "--exp-dir", str(exp), "--list-modes"]) == 0
    assert capsys.readouterr().out.split() == ["ctc_greedy", "ctc_prefix_beam"]
    # the recipes' default set (casnat.decode.modes: ctc_prefix_beam is not a recipe default)
    assert main(["decode", "--exp-dir", str(exp), "--list-modes", "--recipe-defaults"]) == 0
    assert capsys.readouterr().out.split() == ["ctc_greedy"]
    assert main(["decode", "--exp-dir", str(exp), "--recipe-defaults"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "--list-modes" in err[0]
    assert main(["decode", "--exp-dir", str(exp)]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "--cuts" in err[0]
    assert main(["decode", "--exp-dir", str(tmp_path / "none"), "--list-modes"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "config.yaml" in err[0]


def test_mode_the_model_lacks_is_one_line(tiny_fsdd, tmp_path, capsys):
    """at_beam / cassnat on a CTC model: decode and transcribe name the mode and the modes the
    model has, without a traceback, and write nothing."""
    conf = tmp_path / "ctc.yaml"
    save_config(tiny_config(tiny_fsdd, "ctc", max_steps=2, max_epochs=1), conf)
    exp = tmp_path / "exp"
    assert main(["train", "--config", str(conf), "--exp-dir", str(exp), "--device", "cpu"]) == 0
    capsys.readouterr()
    cuts = str(tiny_fsdd / "cuts_test.jsonl.gz")
    for mode in ("at_beam", "cassnat", "cassnat_esa"):
        out = tmp_path / f"dec_{mode}"
        argv = ["decode", "--exp-dir", str(exp), "--cuts", cuts, "--mode", mode]
        assert main([*argv, "--out-dir", str(out)]) == 2
        err = _err_lines(capsys)
        assert len(err) == 1 and mode in err[0] and "ctc_greedy, ctc_prefix_beam" in err[0]
        assert not out.exists()
    wav = next((fsdd_dir() / "recordings").glob("*.wav"))
    assert main(["transcribe", "--exp-dir", str(exp), "--mode", "at_beam", str(wav)]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "at_beam" in err[0]


@pytest.mark.parametrize(
    "mode", ["ctc_greedy", "ctc_prefix_beam", "at_beam", "cassnat", "cassnat_esa"]
)
def test_decode_every_mode_writes_report(trained_exp, tiny_fsdd, tmp_path, mode):
    out = tmp_path / "dec"
    rc = main(
        [
            "decode",
            "--exp-dir",
            str(trained_exp),
            "--cuts",
            str(tiny_fsdd / "cuts_test.jsonl.gz"),
            "--mode",
            mode,
            "--out-dir",
            str(out),
            "--num-samples",
            "4",
            "--beam",
            "3",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["utterances"] == 6 and 0.0 <= summary["wer"] and summary["rtf"] > 0
    for name in ("hyp.txt", "ref.txt", "errors.txt", "wer.txt"):
        assert (out / name).is_file()
    refs = (out / "ref.txt").read_text().splitlines()
    assert len(refs) == 6 and all(len(r.split()) >= 2 for r in refs)


def test_transcribe_skips_broken_file_and_keeps_the_rest(trained_exp, tmp_path, capsys):
    src = sorted((fsdd_dir() / "recordings").glob("3_theo_*.wav"))[:2]
    good = [tmp_path / p.name for p in src]
    for s, d in zip(src, good, strict=True):
        shutil.copy(s, d)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00garbage")
    out = tmp_path / "out.txt"
    rc = main(
        [
            "transcribe",
            "--exp-dir",
            str(trained_exp),
            "--output",
            str(out),
            "--timestamps",
            "--mode",
            "cassnat",
            str(good[0]),
            str(broken),
            str(good[1]),
        ]
    )
    assert rc == 1  # one file failed
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err
    lines = out.read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == [good[0].stem, good[1].stem]


def test_report_collects_results(trained_exp, tiny_fsdd, capsys):
    main(
        [
            "decode",
            "--exp-dir",
            str(trained_exp),
            "--cuts",
            str(tiny_fsdd / "cuts_test.jsonl.gz"),
            "--out-dir",
            str(trained_exp / "decode_test_ctc_greedy"),
        ]
    )
    capsys.readouterr()
    out = Path(trained_exp) / "RESULTS.md"
    assert main(["report", str(trained_exp), "--out", str(out)]) == 0
    assert "test_ctc_greedy" in out.read_text()
