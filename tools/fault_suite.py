"""Fault suite: feed ``casnat transcribe`` and ``casnat decode`` a batch of good and broken audio
files and print a table ``fault -> outcome``.

Why: a batch job over thousands of files must not die on the one broken file, must not lose or
change the good files' results because a broken one sat in the same batch, and must name every
file it could not use, once, with the reason. This script checks exactly that, end to end,
through the command line (a subprocess, as a user runs it).

Each fault kind has a *decision*, documented in :data:`KINDS`:

* ``error``: the file is unusable and must be reported (name + reason) and produce no text;
* ``odd``: unusual but valid audio that must be transcribed (several channels are averaged,
  any rate is resampled, clipped / constant / silent audio is still speech-shaped input; a
  truncated file or one whose header overstates its length is decoded from the samples present);
* ``either``: the outcome depends on timing (a file rewritten while it is read): transcribed or
  reported, exactly one of the two, never a crash.

Run (a tiny model is trained in seconds when ``--exp-dir`` is not given)::

    python tools/fault_suite.py --num-files 1000
    python tools/fault_suite.py --exp-dir /work/main/egs/fsdd/exp/cassnat --num-files 1000
    python tools/fault_suite.py --only training --train-trials 10   # SIGKILL trials, one row each

The training section SIGKILLs ``casnat train`` ``--train-trials`` times (seeded kill times, half of
them half-way through a checkpoint write), resumes each with ``--resume`` and prints one row per
trial: when it was killed, what was on disk, the checkpoint the resume continued from, whether a
partial checkpoint was loaded, and whether the final weights equal an undisturbed run's.

The exit status is 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class Case:
    """One input file of the suite: its kind, the decided verdict and what happened to it."""

    name: str  # unique stem: transcribe prints results under it
    path: Path
    kind: str
    verdict: str  # "good", "odd", "error" or "either"
    text: str = ""  # reference words (the digit spoken)
    note: str = ""
    # Filled by the runs:
    alone: str | None = None  # text when transcribed on its own (in-process API)
    batch: str | None = None  # text printed by the batch CLI run
    reports: list[str] = field(default_factory=list)  # "casnat transcribe: ..." lines naming it
    report_lines: int = 0  # stderr lines its report spans (1 = a one-line error)
    decode_hyp: str | None = None
    decode_reports: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- writers
def _wav_bytes(x: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _data_offset(b: bytes) -> int:
    """Byte offset of the ``data`` chunk's size field in a RIFF/WAVE file."""
    return b.index(b"data") + 4


def _zero_channel_wav(n: int) -> bytes:
    """A RIFF header claiming 0 channels (soundfile refuses to write one)."""
    data = b"\x00\x00" * n
    fmt = struct.pack("<HHIIHH", 1, 0, 8000, 0, 0, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def _resampled(x: np.ndarray, sr: int, to: int) -> np.ndarray:
    from casnat.data.features import resample

    return resample(x, sr, to)


Writer = Callable[[Path, np.ndarray, int], Path]


def _w(
    subtype: str = "PCM_16",
    transform=None,
    rate: int | None = None,
    ext: str = "wav",
    fmt: str | None = None,
) -> Writer:
    def write(path: Path, x: np.ndarray, sr: int) -> Path:
        y = transform(x) if transform else x
        out_sr = rate or sr
        if rate and rate != sr:
            y = _resampled(y, sr, rate)
        p = path.with_suffix("." + ext)
        sf.write(p, y, out_sr, subtype=subtype, format=fmt)
        return p

    return write


def _bytes(fn: Callable[[np.ndarray, int], bytes]) -> Writer:
    def write(path: Path, x: np.ndarray, sr: int) -> Path:
        p = path.with_suffix(".wav")
        p.write_bytes(fn(x, sr))
        return p

    return write


def _nan(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[len(y) // 3 : len(y) // 3 + 50] = np.nan
    return y


def _inf(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[len(y) // 2] = np.inf
    return y


def _header_lies_long(x: np.ndarray, sr: int) -> bytes:
    b = bytearray(_wav_bytes(x, sr))
    o = _data_offset(bytes(b))
    b[o : o + 4] = struct.pack("<I", 10**8)  # claims ~50 M samples more than there are
    b[4:8] = struct.pack("<I", 10**8 + 36)
    return bytes(b)


def _header_lies_short(x: np.ndarray, sr: int) -> bytes:
    b = bytearray(_wav_bytes(x, sr))
    o = _data_offset(bytes(b))
    b[o : o + 4] = struct.pack("<I", (len(x) // 2) * 2)  # claims half the samples
    return bytes(b)


def _truncated(x: np.ndarray, sr: int) -> bytes:
    b = _wav_bytes(x, sr)
    return b[: _data_offset(b) + 4 + len(x)]  # header intact, half the data bytes


def _directory(path: Path, x: np.ndarray, sr: int) -> Path:
    p = path.with_suffix(".wav")
    p.mkdir()
    return p


def _dangling(path: Path, x: np.ndarray, sr: int) -> Path:
    p = path.with_suffix(".wav")
    os.symlink(path.with_name(path.name + "-target-gone.wav"), p)
    return p


def _missing(path: Path, x: np.ndarray, sr: int) -> Path:
    return path.with_suffix(".wav")


def _unreadable(path: Path, x: np.ndarray, sr: int) -> Path:
    p = path.with_suffix(".wav")
    sf.write(p, x, sr)
    os.chmod(p, 0)
    return p


#: kind -> (verdict, writer, why). The verdicts are the decisions this suite checks.
KINDS: dict[str, tuple[str, Writer, str]] = {
    "too_short": ("error", _w(transform=lambda x: x[:10]), "10 samples: no feature frame"),
    "empty": ("error", _w(transform=lambda x: x[:0]), "valid header, 0 samples"),
    "zero_bytes": ("error", _bytes(lambda x, sr: b""), "0-byte file"),
    "cut_in_header": (
        "error",
        _bytes(lambda x, sr: _wav_bytes(x, sr)[:30]),
        "file ends inside the header",
    ),
    "non_audio": (
        "error",
        _bytes(lambda x, sr: b"this is a text file, not audio\n" * 40),
        "text renamed .wav",
    ),
    "random_bytes": (
        "error",
        _bytes(lambda x, sr: np.random.default_rng(len(x)).bytes(4000)),
        "random bytes renamed .wav",
    ),
    "nan_samples": ("error", _w("FLOAT", _nan), "float wav with NaN samples"),
    "inf_samples": ("error", _w("FLOAT", _inf), "float wav with an Inf sample"),
    "zero_channels": (
        "error",
        _bytes(lambda x, sr: _zero_channel_wav(len(x))),
        "header says 0 channels",
    ),
    "directory": ("error", _directory, "a directory named .wav (CLI behaviour recorded)"),
    "dangling_symlink": ("error", _dangling, "symlink to a deleted file"),
    "missing": ("error", _missing, "path that does not exist"),
    "truncated_data": ("odd", _bytes(_truncated), "half the data bytes: decode what is there"),
    "header_lies_long": ("odd", _bytes(_header_lies_long), "data size overstated"),
    "header_lies_short": ("odd", _bytes(_header_lies_short), "data size says half: half read"),
    "constant": ("odd", _w("FLOAT", lambda x: np.full_like(x, 0.3)), "DC only: no speech"),
    "silence": ("odd", _w(transform=np.zeros_like), "all zeros"),
    "clipped": ("odd", _w(transform=lambda x: np.clip(20 * x, -1, 1)), "gain x20, clipped"),
    "six_channels": (
        "odd",
        _w(transform=lambda x: np.tile(x[:, None], (1, 6))),
        "6 channels: averaged",
    ),
    "pcm_u8": ("odd", _w("PCM_U8"), "8-bit unsigned"),
    "pcm_24": ("odd", _w("PCM_24"), "24-bit"),
    "float32": ("odd", _w("FLOAT"), "32-bit float"),
    "float64": ("odd", _w("DOUBLE"), "64-bit float"),
    "rate_16k": ("odd", _w(rate=16000), "16 kHz"),
    "rate_22k": ("odd", _w(rate=22050), "22.05 kHz"),
    "rate_44k": ("odd", _w(rate=44100), "44.1 kHz"),
    "rate_48k": ("odd", _w(rate=48000), "48 kHz"),
    "rate_96k": ("odd", _w(rate=96000), "96 kHz"),
    "flac": ("odd", _w(ext="flac", fmt="FLAC"), "FLAC"),
    "ogg": ("odd", _w("VORBIS", ext="ogg", fmt="OGG"), "Ogg Vorbis"),
    "unreadable_perms": ("error", _unreadable, "chmod 000"),
    "changing": ("either", _w(), "rewritten in place while the batch runs"),
}


def fsdd_clips(recordings: Path) -> list[tuple[Path, str]]:
    files = sorted(recordings.glob("*_*_*.wav"))
    if not files:
        raise SystemExit(f"no FSDD recordings in {recordings}")
    return [(f, DIGITS[int(f.name.split("_")[0])]) for f in files]


def build_cases(out: Path, num_files: int, recordings: Path, seed: int = 0) -> list[Case]:
    """``num_files`` inputs in ``out``: every fault kind at least once (about 10% faults), the
    rest FSDD clips copied as they are (8 kHz) or resampled to 16 kHz, in a shuffled order."""
    rng = np.random.default_rng(seed)
    clips = fsdd_clips(recordings)
    out.mkdir(parents=True, exist_ok=True)
    kinds = list(KINDS)
    num_faults = max(len(kinds), num_files // 10)
    plan = [kinds[i % len(kinds)] for i in range(num_faults)]
    plan += ["good"] * max(0, num_files - num_faults)
    rng.shuffle(plan)
    cases = []
    for i, kind in enumerate(plan):
        src, text = clips[int(rng.integers(len(clips)))]
        x, sr = sf.read(src, dtype="float32")
        stem = out / f"{i:05d}_{kind}_{src.stem}"
        if kind == "good":
            if i % 2:
                p = stem.with_suffix(".wav")
                shutil.copyfile(src, p)
            else:
                p = _w(rate=16000)(stem, x, sr)
            cases.append(Case(p.stem, p, "good", "good", text))
            continue
        verdict, writer, note = KINDS[kind]
        p = writer(stem, x, sr)
        if kind == "unreadable_perms":
            try:
                with open(p, "rb"):
                    pass
                verdict, note = "odd", "chmod 000, but readable (running as root): transcribed"
            except PermissionError:
                pass
        cases.append(Case(p.stem, p, kind, verdict, text, note))
    return cases


# ------------------------------------------------------------------------------------ model
def tiny_model(work: Path) -> tuple[Path, Path]:
    """Train a tiny CTC model for 3 steps (seconds); returns (exp_dir, emitting checkpoint)."""
    from casnat.checkpoint import latest_checkpoint
    from casnat.testing import make_tiny_fsdd, tiny_config
    from casnat.train.trainer import train

    exp = work / "exp"
    if latest_checkpoint(exp) is None:
        fbank = make_tiny_fsdd(work / "data", num_train=12, num_dev=3, num_test=3)
        train(tiny_config(fbank, "ctc", max_steps=3, max_epochs=1), exp, device="cpu")
    return exp, emitting_checkpoint(exp, work / "emitting.pt")


def emitting_checkpoint(exp: Path, out: Path) -> Path:
    """``exp``'s newest step checkpoint with the blank logit pushed far down, so greedy CTC emits
    tokens: a model a few steps old otherwise prints empty text for every file, and equal empty
    texts would prove nothing about batch/alone agreement."""
    import torch

    from casnat.checkpoint import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(exp))["model"]
    bias = state["ctc.proj.bias"].clone()
    bias[0] = -1e4
    torch.save({"model": {**state, "ctc.proj.bias": bias}}, out)
    return out


# ------------------------------------------------------------------------------------- runs
def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "casnat.cli", *args], capture_output=True, text=True, env=env
    )


_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def _has_jsonl_format() -> bool:
    """Whether ``casnat transcribe`` has ``--format jsonl`` (a choice, or named in the help of
    the comma-separated option)."""
    from casnat.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    fmt = next(
        (a for a in sub.choices["transcribe"]._actions if "--format" in a.option_strings), None
    )
    return fmt is not None and ("jsonl" in (fmt.choices or ()) or "jsonl" in (fmt.help or ""))


def _rewriter(path: Path, stop: threading.Event) -> threading.Thread:
    """Rewrite ``path`` in place, alternating a long and a short version, until ``stop``."""
    long_b = path.read_bytes()
    short_b = long_b[: len(long_b) // 3]

    def loop() -> None:
        k = 0
        while not stop.is_set():
            with open(path, "r+b") as f:
                f.write(long_b if k % 2 else short_b)
                f.truncate()
            k += 1
            time.sleep(0.002)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def run_transcribe(cases: list[Case], exp: Path, ckpt: Path | None, work: Path) -> dict:
    """The batch CLI run (all files in one command) and, for comparison, each usable file
    transcribed alone through the Python API. Returns the CLI facts."""
    from casnat.inference import load_model

    rec = load_model(exp, ckpt)
    for c in cases:
        if c.verdict in ("good", "odd"):
            (t,) = rec.transcribe([c.path], batch_size=1)
            c.alone = t.text if t.error is None else None
    out_txt = work / "transcribe_out.txt"
    args = ["transcribe", "--exp-dir", str(exp), "--num-threads", "1", "--output", str(out_txt)]
    args += ["--checkpoint", str(ckpt)] if ckpt else []
    jsonl = _has_jsonl_format()
    stop = threading.Event()
    movers = [_rewriter(c.path, stop) for c in cases if c.kind == "changing"]
    try:
        proc = _cli(args + [str(c.path) for c in cases])
    finally:
        stop.set()
        for t in movers:
            t.join()
    by_name = {c.name: c for c in cases}
    for line in proc.stdout.splitlines():
        name, _, text = line.partition(" ")
        if name in by_name:
            by_name[name].batch = text.strip()
    current: Case | None = None
    for line in proc.stderr.splitlines():
        if line.startswith("casnat transcribe: "):
            current = None
            for c in cases:
                if str(c.path) in line:
                    c.reports.append(line[len("casnat transcribe: ") :])
                    c.report_lines += 1
                    current = c
        elif _LOG_LINE.match(line):
            current = None
        elif current is not None:  # a continuation line of the previous error message
            current.report_lines += 1
    facts = {
        "rc": proc.returncode,
        "traceback": "Traceback" in proc.stderr,
        "output_lines": len(out_txt.read_text().splitlines()) if out_txt.exists() else -1,
        "temp_files": [p.name for p in work.glob(".*.tmp")],
        "jsonl": None,
    }
    if jsonl:  # the JSONL format, where the CLI has one: errors go in the "error" field
        jl = work / "transcribe_out.jsonl"
        p2 = _cli(
            args[:-2]
            + ["--output", str(jl), "--format", "jsonl"]
            + [str(c.path) for c in cases if c.kind != "changing"]
        )
        rows = [json.loads(ln) for ln in jl.read_text().splitlines()] if jl.exists() else []
        with_error = {r.get("source", r.get("id", "")) for r in rows if r.get("error")}
        bad = [c for c in cases if c.verdict == "error"]
        facts["jsonl"] = (
            p2.returncode,
            sum(any(c.name in s for s in with_error) for c in bad),
            len(bad),
        )
    return facts


def run_decode(cases: list[Case], exp: Path, ckpt: Path | None, work: Path) -> dict:
    """``casnat decode`` on a manifest of every case (the directory and symlinks included)."""
    from lhotse import CutSet

    from casnat.testing import make_cut

    cuts = []
    for c in cases:
        if c.kind == "changing":
            continue
        try:
            cut = make_cut(c.path, c.text)
        except Exception:  # noqa: BLE001 - unreadable header: describe it without opening it
            cut = make_cut(c.path, c.text, sr=8000)
        cut.id = c.name
        cut.recording.id = c.name
        cut.supervisions[0].recording_id = c.name
        cut.supervisions[0].id = c.name
        cuts.append(cut)
    manifest = work / "cuts_faults.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    out = work / "decode"
    args = [
        "decode",
        "--exp-dir",
        str(exp),
        "--cuts",
        str(manifest),
        "--out-dir",
        str(out),
        "--num-threads",
        "1",
    ]
    args += ["--checkpoint", str(ckpt)] if ckpt else []
    proc = _cli(args)
    by_name = {c.name: c for c in cases}
    hyp = out / "hyp.txt"
    if hyp.exists():
        for line in hyp.read_text().splitlines():
            name, _, text = line.partition(" ")
            if name in by_name:
                by_name[name].decode_hyp = text.strip()
    errors = (out / "errors.txt").read_text() if (out / "errors.txt").exists() else ""
    failed_section = errors.split("\n\n")[0] if "Not decoded" in errors else ""
    for line in failed_section.splitlines():
        for c in cases:
            if line.strip().startswith(c.name + ":"):
                c.decode_reports.append(line.strip())
    summary = out / "summary.json"
    return {
        "rc": proc.returncode,
        "traceback": "Traceback" in proc.stderr,
        "failed": json.loads(summary.read_text()).get("failed") if summary.exists() else None,
        "stderr_tail": proc.stderr.strip().splitlines()[-1:] if proc.returncode else [],
    }


# ---------------------------------------------------------------------------------- training
def _same_weights(a: Path, b: Path) -> bool:
    import torch

    from casnat.checkpoint import load_checkpoint

    x, y = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return x.keys() == y.keys() and all(
        torch.allclose(x[k].double(), y[k].double(), rtol=1e-4, atol=1e-5) for k in x
    )


@dataclass
class KillTrial:
    """One SIGKILL-then-``--resume`` trial of :func:`run_sigkill_trials` (one table row)."""

    trial: int
    how: str  # "write": half-way through a checkpoint write; "random": at a random moment
    kill: str  # when it was killed, in words
    killed: bool  # the run died of SIGKILL (a run that finished first proves nothing)
    on_disk: list[str]  # checkpoints and temporary files the killed run left
    all_whole: bool  # every ckpt-*.pt left on disk loads (atomic writes: never a partial one)
    resumed_from: str  # the checkpoint --resume continued from (its log line), or "scratch"
    resumed_whole: bool  # ... and it was one of the whole ones (never a partial checkpoint)
    resume_rc: int
    tmp_removed: bool  # the resumed run deleted the killed write's temporary file
    equal: bool  # final weights equal the undisturbed run's

    @property
    def ok(self) -> bool:
        return (self.killed and self.all_whole and self.resumed_whole and self.resume_rc == 0
                and self.tmp_removed and self.equal)


_RESUMED = re.compile(r"resumed from (\S+) at epoch \d+ step (\d+)")


def _training_setup(work: Path) -> tuple[Path, object]:
    """A tiny FSDD corpus and the 6-step config (one checkpoint per step) the faults train."""
    from casnat.config import save_config
    from casnat.testing import make_tiny_fsdd, tiny_config

    fbank = work / "data" / "fbank"
    if not (fbank / "cuts_train.jsonl.gz").is_file():
        fbank = make_tiny_fsdd(work / "data", num_train=12, num_dev=3, num_test=3)
    cfg = tiny_config(fbank, max_epochs=3, max_steps=6, checkpoint_every_steps=1)
    save_config(cfg, work / "cfg.yaml")
    return work / "cfg.yaml", cfg


def run_sigkill_trials(work: Path, trials: int = 10, seed: int = 0) -> list[KillTrial]:
    """``trials`` runs of ``casnat train`` SIGKILLed once each, then ``--resume``d to the end.

    Odd-numbered trials are killed half-way through a checkpoint write (the n-th of the run's
    11 checkpoint writes, n drawn in 2..10, step and epoch checkpoints alike; the half-written
    temporary file is fsynced first, as a crash leaves it); even ones at a random moment, drawn
    uniformly over the stretch between the first and the last step's checkpoint of an
    undisturbed run (so some land in a write too). ``seed`` fixes every draw. The final weights
    are compared with an undisturbed run's: with 0 DataLoader workers a resume is exact."""
    import random

    from casnat.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
    from casnat.testing import FAULT_KILL_IN_SAVE, train_subprocess

    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path, _ = _training_setup(work)
    full = work / "full"
    shutil.rmtree(full, ignore_errors=True)
    # The undisturbed run, timed: from its first checkpoint to its last step's checkpoint is the
    # stretch the random kills are drawn from (after it come only the final validation and the
    # exit, where a kill would often come too late to hit the run at all).
    proc = train_subprocess(cfg_path, full)
    t_first = t_last = None
    while proc.poll() is None:
        newest = latest_checkpoint(full)
        if newest is not None:
            now = time.monotonic()
            t_first = t_first or now
            if newest.name == "ckpt-6.pt" and t_last is None:
                t_last = now
        time.sleep(0.005)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the undisturbed run failed: {err[-2000:]}")
    span = max((t_last or 0.0) - (t_first or 0.0), 0.05)
    ref = latest_checkpoint(full)
    rows = []
    for i in range(trials):
        exp = work / f"kill{i}"
        shutil.rmtree(exp, ignore_errors=True)
        if i % 2 == 0:
            how, n = "write", rng.randint(2, 10)
            proc = train_subprocess(cfg_path, exp, **{FAULT_KILL_IN_SAVE: str(n)})
            proc.communicate(timeout=300)
            kill = f"half-way through checkpoint write #{n}"
        else:
            how, delay = "random", rng.uniform(0.0, span)
            # The span was timed on one run; a busy machine can finish a later one sooner than
            # the drawn delay (or slower). A run that ends before its kill is redone with half
            # the delay, so that every trial is a real kill.
            for _attempt in range(6):
                shutil.rmtree(exp, ignore_errors=True)
                proc = train_subprocess(cfg_path, exp)
                deadline = time.monotonic() + 300
                while latest_checkpoint(exp) is None and proc.poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                t_kill = time.monotonic() + delay
                while proc.poll() is None and time.monotonic() < t_kill:
                    time.sleep(0.005)
                newest = latest_checkpoint(exp)
                proc.kill()
                proc.communicate(timeout=60)
                if proc.returncode == -9:
                    break
                delay /= 2
            kill = f"{delay:.2f} s after the first checkpoint (newest then: " + (
                f"{newest.name})" if newest is not None else "none)"
            )
        on_disk = sorted(p.name for p in exp.glob("*.pt")) + sorted(
            p.name for p in exp.glob(".*.tmp")
        )
        whole = set()
        all_whole = True
        for ck in exp.glob("ckpt-*.pt"):
            try:
                load_checkpoint(ck)
                whole.add(ck.name)
            except CheckpointError:
                all_whole = False
        resume = train_subprocess(cfg_path, exp, resume=True)
        _, err = resume.communicate(timeout=300)
        log = (exp / "train.log").read_text() if (exp / "train.log").is_file() else ""
        found = _RESUMED.findall(log)
        if found:
            resumed_from = f"{Path(found[-1][0]).name} (step {found[-1][1]})"
            resumed_whole = Path(found[-1][0]).name in whole
        else:  # killed before the first checkpoint landed: nothing to resume, from scratch
            resumed_from, resumed_whole = "scratch", not whole
        final = latest_checkpoint(exp)
        rows.append(
            KillTrial(
                trial=i + 1,
                how=how,
                kill=kill,
                killed=proc.returncode == -9,
                on_disk=on_disk,
                all_whole=all_whole,
                resumed_from=resumed_from,
                resumed_whole=resumed_whole,
                resume_rc=resume.returncode,
                tmp_removed=not list(exp.glob(".*.tmp")),
                equal=resume.returncode == 0 and final is not None and _same_weights(final, ref),
            )
        )
    return rows


def sigkill_table(rows: list[KillTrial]) -> tuple[str, bool]:
    """One markdown row per SIGKILL trial; True when every trial is ok."""
    lines = [
        "| # | killed | on disk after the kill | resumed from | partial loaded | "
        "final weights equal | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        killed = r.kill if r.killed else f"{r.kill}: NOT KILLED (finished first)"
        partial = "no" if (r.all_whole and r.resumed_whole) else "YES"
        lines.append(
            f"| {r.trial} | {killed} | {' '.join(r.on_disk) or '-'} | {r.resumed_from} | "
            f"{partial} | {'yes' if r.equal else 'NO'} | {'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines), all(r.ok for r in rows)


def run_training_faults(work: Path) -> list[tuple[str, str, bool]]:
    """The other training faults on the tiny config: rows ``(fault, outcome, ok)``: a truncated
    newest checkpoint, a malicious pickle, a full disk while checkpointing."""
    from dataclasses import replace

    import torch

    from casnat.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
    from casnat.testing import FAULT_FSIZE, train_subprocess
    from casnat.train.trainer import train

    cfg_path, cfg = _training_setup(work)
    ref_dir = work / "full"
    if latest_checkpoint(ref_dir) is None:
        train(cfg, ref_dir, device="cpu")
    ref = latest_checkpoint(ref_dir)
    rows = []

    # A truncated newest checkpoint: resume falls back to the previous one, with a warning.
    exp = work / "corrupt"
    shutil.rmtree(exp, ignore_errors=True)
    train(replace(cfg, train=replace(cfg.train, max_steps=4)), exp, device="cpu")
    newest = latest_checkpoint(exp)
    newest.write_bytes(newest.read_bytes()[:1000])
    train(cfg, exp, resume=True, device="cpu")
    log = (exp / "train.log").read_text()
    ok = (
        newest.name in log
        and "ckpt-3.pt at epoch" in log
        and _same_weights(latest_checkpoint(exp), ref)
    )
    rows.append(
        (
            "truncated_checkpoint",
            "warning names it; resumed from the previous one; same final weights"
            if ok
            else "NOT as expected",
            ok,
        )
    )

    # A malicious pickle as the newest checkpoint: refused, its code never runs.
    marker = work / "PWNED"
    evil = exp / "ckpt-99.pt"
    torch.save({"model": {}, "x": _Evil(str(marker))}, evil)
    try:
        load_checkpoint(evil)
        refused = ""
    except CheckpointError as e:
        refused = str(e)
    ok = bool(refused) and "\n" not in refused and not marker.exists()
    rows.append(("malicious_pickle", f"refused in one line, code not run: {refused[:60]}...", ok))
    evil.unlink()

    # A full disk while checkpointing: one line, previous checkpoint intact.
    exp = work / "diskfull"
    shutil.rmtree(exp, ignore_errors=True)
    train(replace(cfg, train=replace(cfg.train, max_steps=2)), exp, device="cpu")
    before = (exp / "ckpt-2.pt").read_bytes()
    proc = train_subprocess(cfg_path, exp, True, **{FAULT_FSIZE: str(len(before) // 2)})
    _, err = proc.communicate(timeout=300)
    last = (err.strip().splitlines() or [""])[-1]
    ok = (
        proc.returncode == 2
        and "Traceback" not in err
        and "cannot write" in last
        and (exp / "ckpt-2.pt").read_bytes() == before
    )
    rows.append(("disk_full_checkpoint", last[:90], ok))
    return rows


class _Evil:
    """Unpickling this would run a shell command creating ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def training_table(rows: list[tuple[str, str, bool]]) -> tuple[str, bool]:
    lines = ["| training fault | outcome | ok |", "|---|---|---|"]
    lines += [f"| {f} | {o.replace('|', '/')} | {'yes' if ok else 'NO'} |" for f, o, ok in rows]
    return "\n".join(lines), all(ok for _, _, ok in rows)


def outcome(c: Case) -> str:
    if c.batch is not None and not c.reports:
        return "transcribed"
    if c.reports and c.batch is None:
        return "error"
    return f"INCONSISTENT(text={c.batch is not None}, reports={len(c.reports)})"


def check_case(c: Case) -> list[str]:
    """The problems with one case's outcome (empty: it behaved as decided)."""
    o = outcome(c)
    probs = []
    if o.startswith("INCONSISTENT"):
        probs.append(o)
    if c.verdict in ("good", "odd"):
        if o != "transcribed":
            probs.append(f"expected transcribed, got {o}")
        elif c.alone is not None and c.batch != c.alone:
            probs.append(f"batch text {c.batch!r} != alone {c.alone!r}")
        if c.kind != "changing" and c.decode_hyp is None:
            probs.append("missing from decode hyp.txt")
        elif c.decode_hyp is not None and c.decode_hyp != c.alone:
            probs.append(f"decode text {c.decode_hyp!r} != transcribe {c.alone!r}")
    elif c.verdict == "error":
        if o != "error":
            probs.append(f"expected an error, got {o}")
        elif len(c.reports) != 1:
            probs.append(f"reported {len(c.reports)} times")
        elif c.name not in c.reports[0] or len(c.reports[0]) < len(str(c.path)) + 5:
            probs.append("report lacks the file name or a reason")
        if len(c.decode_reports) != 1:
            probs.append(f"decode errors.txt names it {len(c.decode_reports)} times")
    elif o not in ("transcribed", "error"):
        probs.append(o)
    return probs


def table(cases: list[Case], tfacts: dict, dfacts: dict) -> tuple[str, bool]:
    """Markdown table fault -> outcome (one row per kind), plus the run-level checks."""
    rows = [
        "| fault | n | decided | outcome | alone=batch | decode | reason (first) | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    all_ok = True
    for kind in ["good", *KINDS]:
        group = [c for c in cases if c.kind == kind]
        if not group:
            continue
        outs = sorted({outcome(c) for c in group})
        probs = [p for c in group for p in check_case(c)]
        all_ok &= not probs
        same = [c.batch == c.alone for c in group if c.alone is not None and c.batch is not None]
        dec = [c.decode_hyp is not None for c in group if c.kind != "changing"]
        reason = next((c.reports[0].split(": ", 1)[-1] for c in group if c.reports), "")
        reason = " ".join(reason.split())[:70].replace("|", "/")
        rows.append(
            f"| {kind} | {len(group)} | {group[0].verdict} | {', '.join(outs)} | "
            f"{sum(same)}/{len(same)} | {sum(dec)}/{len(dec)} scored | {reason} | "
            f"{'yes' if not probs else 'NO: ' + probs[0][:60]} |"
        )
    n_ok = sum(c.verdict in ("good", "odd") for c in cases)
    n_text = sum(outcome(c) == "transcribed" for c in cases)
    n_err = sum(c.verdict == "error" for c in cases)
    checks = [
        ("transcribe: no traceback", not tfacts["traceback"]),
        ("transcribe: exit status 1", tfacts["rc"] == 1),
        (
            "transcribe: --output has one line per transcribed file",
            tfacts["output_lines"] == n_text,
        ),
        ("transcribe: no temp files left", not tfacts["temp_files"]),
        ("decode: no traceback", not dfacts["traceback"]),
        ("decode: exit status 1", dfacts["rc"] == 1),
        ("decode: summary.json counts the failed cuts", dfacts["failed"] == n_err),
    ]
    multi = [c for c in cases if c.report_lines > 1]
    findings = [
        (
            f"transcribe: every error is one stderr line ({len(multi)} of {n_err} span several: "
            "lhotse's multi-line message, passed on by casnat/inference.py)",
            not multi,
        ),
    ]
    if tfacts["jsonl"] is not None:
        rc, named, total = tfacts["jsonl"]
        checks.append(
            ("transcribe --format jsonl: every bad file has an error field", named == total)
        )
    lines = rows + [
        "",
        f"{len(cases)} files: {n_ok} usable (good+odd), {n_err} bad, {n_text} transcribed",
        "",
    ]
    for what, ok in checks:
        all_ok &= ok
        lines.append(f"- [{'x' if ok else ' '}] {what}")
    if tfacts["jsonl"] is None:
        lines.append("- [-] transcribe --format jsonl: not in this CLI (skipped)")
    lines.append("\nFindings (reported, not counted as failures of this suite):")
    lines += [f"- [{'x' if ok else ' '}] {what}" for what, ok in findings]
    return "\n".join(lines), all_ok


def run_suite(
    num_files: int,
    work: Path,
    exp: Path | None = None,
    ckpt: Path | None = None,
    recordings: Path | None = None,
) -> tuple[str, bool, list[Case]]:
    from casnat.testing import FSDD_RECORDINGS

    if exp is None:
        exp, ckpt = tiny_model(work / "model")
    cases = build_cases(work / "audio", num_files, recordings or FSDD_RECORDINGS)
    tfacts = run_transcribe(cases, exp, ckpt, work)
    dfacts = run_decode(cases, exp, ckpt, work)
    text, ok = table(cases, tfacts, dfacts)
    return text, ok, cases


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--exp-dir",
        type=Path,
        default=None,
        help="trained experiment (read only); default: train a tiny one",
    )
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--num-files", type=int, default=1000)
    p.add_argument("--work-dir", type=Path, default=None, help="default: a temporary directory")
    p.add_argument(
        "--train-trials",
        type=int,
        default=10,
        help="SIGKILL-then---resume trials of the training section (0: no SIGKILL trials)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the SIGKILL trials' kill times")
    p.add_argument(
        "--only",
        choices=("inputs", "training"),
        default=None,
        help="run one section: the transcribe/decode input faults, or the training faults",
    )
    a = p.parse_args()
    work = a.work_dir or Path(tempfile.mkdtemp(prefix="casnat-faults-"))
    t0 = time.monotonic()
    ok = True
    if a.only != "training":
        text, ok, _ = run_suite(a.num_files, work, a.exp_dir, a.checkpoint)
        print(text)
    if a.only != "inputs":
        if a.train_trials:
            ktext, kok = sigkill_table(
                run_sigkill_trials(work / "training", a.train_trials, a.seed)
            )
            print(f"\nSIGKILL then --resume, {a.train_trials} trials (seed {a.seed}):\n" + ktext)
            ok &= kok
        ttext, tok = training_table(run_training_faults(work / "training"))
        print("\n" + ttext)
        ok &= tok
    print(
        f"\n{'ALL CHECKS PASSED' if ok else 'SOME CHECKS FAILED'} "
        f"({time.monotonic() - t0:.0f} s, work dir {work})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
