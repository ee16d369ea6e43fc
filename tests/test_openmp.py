"""casnat.openmp: the short OpenMP spin is set before torch loads, only for training with workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, os, sys
from casnat.openmp import configure_for_command
d = configure_for_command(sys.argv[1:])
import torch  # after the decision, as in the CLI
print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"), "decision": d}))
"""


def _config(tmp_path: Path, workers: int) -> Path:
    path = tmp_path / f"w{workers}.yaml"
    path.write_text(f"data:\n  num_workers: {workers}\n")
    return path


def _probe(argv: list[str], **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_with_workers_gets_the_short_spin(tmp_path: Path) -> None:
    r = _probe(["train", "--config", str(_config(tmp_path, 1)), "--exp-dir", "x"])
    assert r["spin"] == "2000"
    assert "num_workers=1" in r["decision"]


@pytest.mark.parametrize("argv", [
    ["train", "--config", "{w0}", "--exp-dir", "x"],          # no workers: the long spin is faster
    ["train", "--config={w1}", "--device", "cuda", "--exp-dir", "x"],
    ["decode", "--config", "{w1}"],                            # not a training command
    ["train", "--config", "{missing}", "--exp-dir", "x"],      # the command reports the bad path
])
def test_other_runs_keep_libgomps_default(tmp_path: Path, argv: list[str]) -> None:
    paths = {"w0": _config(tmp_path, 0), "w1": _config(tmp_path, 1),
             "missing": tmp_path / "nope.yaml"}
    r = _probe([a.format(**paths) for a in argv])
    assert r["spin"] is None


def test_the_users_setting_wins(tmp_path: Path) -> None:
    r = _probe(["train", "--config", str(_config(tmp_path, 2))], OMP_WAIT_POLICY="ACTIVE")
    assert r["spin"] is None
    assert "OMP_WAIT_POLICY=ACTIVE" in r["decision"]


def test_too_late_once_torch_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (the situation this branch is for)

    from casnat import openmp

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    d = openmp.configure_for_command(["train", "--config", str(_config(tmp_path, 1))])
    assert "GOMP_SPINCOUNT" not in os.environ
    assert "torch was imported" in d


def test_bench_train_times_the_spin_training_would_use(tmp_path: Path) -> None:
    """bench-train's frames/s must be the trainer's: the same spin decision for its configs."""
    w0, w1 = _config(tmp_path, 0), _config(tmp_path, 1)
    both = _probe(["bench-train", "--config", str(w1), "--config", str(w1)])
    assert both["spin"] == "2000"
    assert _probe(["bench-train", "--config", str(w0)])["spin"] is None
    mixed = _probe(["bench-train", "--config", str(w1), "--config", str(w0)])
    assert mixed["spin"] is None and "separate runs" in mixed["decision"]
    forced = _probe(["bench-train", "--config", str(w1), "--config", str(w0),
                     "--num-workers", "1"])
    assert forced["spin"] == "2000"
