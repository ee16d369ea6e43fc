"""Faults in the inputs of ``casnat transcribe`` and ``casnat decode``: a batch with broken files
among good ones loses nothing, changes no good result and names every broken file once.

The full table (1,000 files, every fault kind) is ``tools/fault_suite.py``; here it runs on 33
files (each kind once) and the decode report is checked on its own through ``casnat.cli.main``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from casnat.testing import FSDD_RECORDINGS, REPO_ROOT, load_tool, make_cut, tiny_config

pytestmark = pytest.mark.skipif(not FSDD_RECORDINGS.is_dir(), reason="FSDD data not found")


def _tool():
    return load_tool("fault_suite")


@pytest.fixture(scope="module")
def model(tiny_fsdd, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CTC experiment and a checkpoint of it that emits tokens (non-empty texts)."""
    from casnat.train.trainer import train

    work = tmp_path_factory.mktemp("faults")
    exp = work / "exp"
    train(tiny_config(tiny_fsdd, "ctc", max_steps=3, max_epochs=1), exp, device="cpu")
    return exp, _tool().emitting_checkpoint(exp, work / "emitting.pt")


def test_fault_suite_every_kind_behaves_as_decided(model, tmp_path):
    tool = _tool()
    exp, ckpt = model
    text, _, cases = tool.run_suite(len(tool.KINDS) + 1, tmp_path, exp, ckpt)
    kinds = {c.kind for c in cases}
    assert kinds == {"good", *tool.KINDS}
    problems = {c.name: tool.check_case(c) for c in cases if tool.check_case(c)}
    assert not problems, text
    # Usable files were really transcribed to text (the check compares real strings).
    assert all(c.batch for c in cases if c.kind == "good")
    for what in (
        "no traceback",
        "exit status 1",
        "one line per transcribed file",
        "no temp files",
        "summary.json counts",
    ):
        assert any(what in ln and ln.startswith("- [x]") for ln in text.splitlines()), text


def test_decode_names_bad_cuts_in_errors_txt_and_scores_the_rest(model, tmp_path, capsys):
    from casnat.cli import main

    exp, ckpt = model
    good = [FSDD_RECORDINGS / n for n in ("3_jackson_0.wav", "7_george_3.wav")]
    x, sr = sf.read(good[0], dtype="float32")
    x[100:120] = np.nan
    nan = tmp_path / "nan.wav"
    sf.write(nan, x, sr, subtype="FLOAT")
    short = tmp_path / "short.wav"
    sf.write(short, x[:10] * 0, sr)
    missing = tmp_path / "missing.wav"
    cuts = [
        make_cut(good[0], "three"),
        make_cut(nan, "three"),
        make_cut(missing, "one", sr=8000),
        make_cut(good[1], "seven"),
        make_cut(short, "one"),
    ]
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    out = tmp_path / "dec"
    rc = main(
        [
            "decode",
            "--exp-dir",
            str(exp),
            "--checkpoint",
            str(ckpt),
            "--cuts",
            str(manifest),
            "--out-dir",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    hyp_ids = [ln.split()[0] for ln in (out / "hyp.txt").read_text().splitlines()]
    assert hyp_ids == [cuts[0].id, cuts[3].id]  # the good ones, scored
    errors = (out / "errors.txt").read_text()
    head = errors.split("\n\n")[0].splitlines()
    assert head[0].startswith("Not decoded (3)")
    for cut, name, why in (
        (cuts[1], "nan.wav", "non-finite"),
        (cuts[2], "missing.wav", ""),
        (cuts[4], "short.wav", "too short"),
    ):
        lines = [ln for ln in head[1:] if ln.strip().startswith(cut.id + ":")]
        assert len(lines) == 1 and name in lines[0] and why in lines[0], head
        assert sum(f"casnat decode: {cut.id}:" in ln for ln in err.splitlines()) == 1
    assert json.loads((out / "summary.json").read_text())["failed"] == 3


def test_disk_full_writing_the_output_is_one_line_and_keeps_the_old_file(model, tmp_path):
    """``--output`` on a full disk (RLIMIT_FSIZE; SIGXFSZ ignored so the write fails with EFBIG):
    one line naming the file, exit status 2, the previous output intact, no temp file left."""
    import os
    import subprocess

    exp, ckpt = model
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    runner = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (6, 6))\n"
        "from casnat.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    wav = FSDD_RECORDINGS / "3_jackson_0.wav"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            runner,
            "transcribe",
            "--exp-dir",
            str(exp),
            "--checkpoint",
            str(ckpt),
            "--output",
            str(out),
            str(wav),
            str(wav),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("casnat transcribe: error: cannot write") and str(out) in last
    assert "the previous out.txt is unchanged" in last
    assert out.read_text() == "old\n"
    assert not list(tmp_path.glob(".*.tmp"))
    # The results still reached stdout, under unique ids (the same file given twice).
    ids = [line.split()[0] for line in proc.stdout.splitlines()]
    assert ids == ["3_jackson_0-1", "3_jackson_0-2"]
