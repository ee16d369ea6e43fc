"""casnat bench-train on a tiny config: both precisions, every phase, FLOP rates, --out."""

from __future__ import annotations

from casnat.cli import main
from casnat.config import save_config
from casnat.testing import tiny_config


def _rows(table: str, header: str) -> list[list[str]]:
    """Data rows (cells) of the Markdown table whose header line starts with ``header``."""
    lines = table.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows


def test_bench_train_reports_both_precisions_per_phase(tiny_fsdd, tmp_path, capsys):
    conf = tmp_path / "tiny" / "conf" / "cassnat.yaml"
    conf.parent.mkdir(parents=True)
    save_config(tiny_config(tiny_fsdd, "cassnat"), conf)
    out = tmp_path / "bench.md"
    rc = main([
        "bench-train", "--config", str(conf), "--steps", "2", "--warmup", "1",
        "--num-threads", "1", "--gemm-reps", "1", "--work-dir", str(tmp_path / "work"),
        "--out", str(out),
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() + "\n"  # --out holds the printed table
    assert "GEMM peaks: fp32" in printed and str(tiny_fsdd) in printed
    rows = _rows(printed, "| config | precision | utts/step")
    assert [r[:2] for r in rows] == [["tiny/cassnat", "fp32"], ["tiny/cassnat", "bf16"]]
    for r in rows:
        assert float(r[5]) > 0  # frames/s
        data, fwd, align, bwd, opt = map(float, r[7:12])
        assert 99 <= data + fwd + align + bwd + opt <= 101  # the phases cover the step
        assert fwd > 0 and bwd > 0 and opt > 0
        assert align > 0  # the CASS-NAT forward runs the Viterbi op, marked as its own phase
    assert rows[0][6] == "1.00"  # fp32 is the reference
    flops = _rows(printed, "| config | precision | step GFLOP")
    assert len(flops) == 2
    for r in flops:
        step_gflop, enc_gflop = float(r[2]), float(r[6])
        assert step_gflop > enc_gflop > 0  # the encoder is part of the step
