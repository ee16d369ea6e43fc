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
        "--precisions", "fp32,bf16", "--num-threads", "1", "--gemm-reps", "1",
        "--work-dir", str(tmp_path / "work"),
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
        assert align >= 0
    # The CASS-NAT forward runs the Viterbi op, marked as its own phase (in fp32: where bf16 is
    # emulated its forward is so slow that the op's share rounds to 0.00%).
    assert float(rows[0][9]) > 0
    assert rows[0][6] == "1.00"  # fp32 is the reference
    flops = _rows(printed, "| config | precision | step GFLOP")
    assert len(flops) == 2
    for r in flops:
        step_gflop, enc_gflop = float(r[2]), float(r[6])
        assert step_gflop > enc_gflop > 0  # the encoder is part of the step


def test_bench_train_leaves_out_emulated_bf16_by_default(tiny_fsdd, tmp_path, capsys, monkeypatch):
    """Where bf16 would be emulated (minutes per step), the default runs fp32 alone and says why."""
    from casnat.train import precision

    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "no native bf16 here"))
    conf = tmp_path / "tiny" / "conf" / "cassnat.yaml"
    conf.parent.mkdir(parents=True)
    save_config(tiny_config(tiny_fsdd, "cassnat"), conf)
    rc = main(["bench-train", "--config", str(conf), "--steps", "1", "--warmup", "0",
               "--num-threads", "1", "--gemm-reps", "1", "--work-dir", str(tmp_path / "work")])
    assert rc == 0
    printed = capsys.readouterr().out
    rows = _rows(printed, "| config | precision | utts/step")
    assert [r[1] for r in rows] == ["fp32"]
    assert "bf16 is emulated here: no native bf16 here" in printed


def test_gemm_peaks_stop_at_a_slow_shape(monkeypatch):
    """A dtype whose first product is slow is not timed on the bigger shapes (an emulated bf16
    2048^3 product takes about a minute)."""
    from casnat.train import benchmark

    calls = []
    real_mm = benchmark.torch.mm

    def mm(a, b):
        calls.append((a.dtype, a.shape[0] * a.shape[1] * b.shape[1]))
        return real_mm(a, b)

    monkeypatch.setattr(benchmark.torch, "mm", mm)
    peaks = benchmark.measure_gemm_peaks(reps=1, max_call_s=0.0)  # every first call is "slow"
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    smallest = min(m * k * n for m, k, n in benchmark.GEMM_SHAPES)
    assert {size for _, size in calls} == {smallest}  # one call per dtype, smallest shape only
    assert len(calls) == 2
