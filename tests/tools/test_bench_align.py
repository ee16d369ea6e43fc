"""tools/bench_align.py: its timing protocol, the shared inputs and a tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

from casnat.testing import REPO_ROOT


def _load_tool():
    """Import tools/bench_align.py (tools/ is not a package) once per session."""
    if "bench_align" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "bench_align", REPO_ROOT / "tools" / "bench_align.py"
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_align"] = mod  # dataclasses look their module up while defining
        spec.loader.exec_module(mod)
    return sys.modules["bench_align"]


def _torchaudio_here() -> bool:
    try:
        import torchaudio.functional as F

        return hasattr(F, "forced_align")
    except Exception:  # absent, or built for another torch (it needs torch 2.9.x)
        return False


class _Clock:
    """A fake ``time.perf_counter`` that moves only when a test function says so, so the
    timing protocol is checked by its logic, never by how fast this machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_interleaved_rounds_take_the_remote_time_and_memory(monkeypatch):
    """A call that another process timed counts with that process's figures, not the round
    trip's; the others keep the fastest of their own wall times."""
    bench = _load_tool()
    clock = _Clock()
    monkeypatch.setattr(bench, "time", clock)
    calls = {"remote": 0, "local": 0}
    local_seconds = [5.0, 2.0, 3.0]  # first call, then one per round

    def remote():
        calls["remote"] += 1
        clock.now += 100.0  # the round trip is slow; the worker's own figure counts
        return bench.Remote(seconds=123.0 + calls["remote"], peak_mib=7.5)

    def local():
        clock.now += local_seconds[calls["local"]]
        calls["local"] += 1

    res = bench.measure_interleaved({"remote": remote, "local": local}, reps=3, min_seconds=0.0)
    assert calls == {"remote": 3, "local": 3}  # alternating rounds: one call each per round
    assert res["remote"] == (124.0, 7.5)  # the fastest the worker reported, its memory
    assert res["local"][0] == 2.0  # the fastest of its own calls, not the first or the last


def test_rounds_go_on_until_min_seconds_have_passed(monkeypatch):
    bench = _load_tool()
    clock = _Clock()
    monkeypatch.setattr(bench, "time", clock)
    calls = []

    def fn():
        calls.append(clock.now)
        clock.now += 2.0

    seconds, _ = bench.measure_interleaved({"fn": fn}, reps=2, min_seconds=9.0)["fn"]
    # the first call, then rounds until >= 9 s after it: rounds starting at 2, 4, 6, 8, 10 s
    assert len(calls) == 6 and seconds == 2.0
    calls.clear()
    bench.measure_interleaved({"fn": fn}, reps=2, min_seconds=9.0, max_rounds=3)
    assert len(calls) == 3  # max_rounds caps a slow-clock row


def test_shared_copy_is_seen_by_another_mapping(tmp_path):
    """The torchaudio worker maps the file by name: it must see the same values, and the same
    pages (a write through one mapping shows in the other)."""
    bench = _load_tool()
    x = torch.randn(2, 3, 5)
    shared, path = bench.shared_copy(x)
    try:
        other = torch.from_file(path, shared=True, size=x.numel(), dtype=x.dtype).view(x.shape)
        assert torch.equal(other, x)
        shared[1, 2, 4] = 42.0
        assert other[1, 2, 4].item() == 42.0
    finally:
        os.unlink(path)


def test_worker_that_cannot_start_leaves_torchaudio_unmeasured(capsys):
    """A venv whose python fails (here: one that exits at once) must not stop the benchmark."""
    bench = _load_tool()
    worker = bench.TorchaudioWorker("/bin/false", threads=1)
    assert worker.proc is None
    assert "torchaudio not measured" in capsys.readouterr().err
    worker.close()  # no-op


@pytest.mark.skipif(
    not _torchaudio_here(),
    reason="torchaudio not importable here (it needs torch 2.9.x; bench_align then takes a "
    "venv's python with --torchaudio-python)",
)
def test_worker_aligns_like_casnat():
    bench = _load_tool()
    from casnat.align import ctc_viterbi_align

    lp, il, tg, tl = bench.make_inputs(3, 40, 6, 30, 0)
    lp, path = bench.shared_copy(lp)
    worker = bench.TorchaudioWorker(None, threads=2)
    try:
        path0 = worker.load(path, lp, tg, 3)
        ref, _ = ctc_viterbi_align(lp[:1], il[:1], tg[:1], tl[:1])
        assert path0 == ref[0].tolist()
        timed = worker.run_pass()
        assert isinstance(timed, bench.Remote) and timed.seconds > 0
    finally:
        worker.close()
        os.unlink(path)


def test_tiny_run_prints_a_row_per_configuration(monkeypatch, capsys):
    bench = _load_tool()
    argv = ["bench_align", "--batch", "2", "--T", "30", "--U", "4", "40", "--V", "12"]
    # the tool sets torch's thread count: keep this process's, for the tests that follow
    argv += ["--reps", "1", "--pyloop-utts", "1", "--threads", str(torch.get_num_threads())]
    monkeypatch.setattr(sys, "argv", argv)
    # and numba's pool size: once its threads run, another NUMBA_NUM_THREADS is an error
    import numba

    monkeypatch.setenv("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    bench.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.lstrip().startswith("30 ")]
    assert len(rows) == 2
    assert "n/a: T < U" in rows[1]  # U = 40 > T = 30: no path, no timing
    cells = rows[0].split("|")
    assert float(cells[2].split()[0]) > 0  # numba utt/s (cpp's is nan without the extension)
    from casnat.align import _backend

    if _backend.HAS_CPP:  # U = 4 takes the register kernel where the CPU has AVX-512: gen/cpp
        assert float(cells[-1].strip().rstrip("x")) > 0
    ta_measured = "torchaudio: yes" in out
    assert ta_measured == _torchaudio_here()
