"""Test helpers that ship with the package: tiny configs, a tiny real-speech corpus, random CTC
inputs and a toy acoustic task a tiny model learns exactly.

Used by casnat's own tests (the only home of their shared helpers: test modules import from here,
never from each other or from a conftest) and usable by anyone extending casnat.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from casnat.config import (
    ATDecoderConfig,
    DataConfig,
    EncoderConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    NATDecoderConfig,
    TokenizerConfig,
    TrainConfig,
)

if TYPE_CHECKING:
    from lhotse import CutSet
    from lhotse.cut import MonoCut

    from casnat.models.asr import ASRModel

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``$CASNAT_SHARED_DATA`` or ``../shared/data`` beside the repository, if it exists."""
    env = os.environ.get("CASNAT_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def fsdd_dir() -> Path | None:
    """The FSDD corpus directory (with ``recordings/*.wav``, 8 kHz) if it is present."""
    d = shared_data_dir()
    return d / "fsdd" if d is not None and (d / "fsdd" / "recordings").is_dir() else None


#: FSDD's ``recordings`` folder; a path that does not exist where FSDD is absent, so tests can
#: ``skipif(not FSDD_RECORDINGS.is_dir())`` and still name files in it at collection time.
FSDD_RECORDINGS = (fsdd_dir() or Path("shared-data-not-found/fsdd")) / "recordings"


def tiny_parts(
    d_model: int = 64,
    ffn_dim: int = 128,
    conv_kernel: int = 7,
    subsampling_channels: int | None = None,
    num_mixed_layers: int = 1,
) -> tuple[EncoderConfig, ATDecoderConfig, NATDecoderConfig]:
    """Encoder, AT and NAT decoder configs of a tiny model (2 heads, 2 encoder layers, InterCTC
    at layer 1, one decoder layer of each kind, no dropout): the sizes the tests train."""
    enc = EncoderConfig(
        d_model=d_model,
        num_heads=2,
        ffn_dim=ffn_dim,
        num_layers=2,
        conv_kernel=conv_kernel,
        dropout=0.0,
        inter_ctc_layer=1,
        subsampling_channels=subsampling_channels,
    )
    at = ATDecoderConfig(num_layers=1, num_heads=2, ffn_dim=ffn_dim, dropout=0.0)
    nat = NATDecoderConfig(
        num_sa_layers=1, num_mixed_layers=num_mixed_layers, num_heads=2, ffn_dim=ffn_dim,
        dropout=0.0,
    )
    return enc, at, nat


def tiny_config(data_dir: Path, model_type: str = "ctc", **train_overrides) -> ExperimentConfig:
    """A model small enough to train a few steps in seconds on a CPU."""
    enc, at, nat = tiny_parts()
    model = ModelConfig(
        type=model_type,  # type: ignore[arg-type]
        encoder=enc,
        at_decoder=at if model_type in ("at", "cassnat") else None,
        nat_decoder=nat if model_type == "cassnat" else None,
    )
    train = TrainConfig(
        peak_lr=2e-3,
        warmup_steps=10,
        max_epochs=1,
        log_interval=2,
        checkpoint_every_steps=3,
        num_threads=1,
    )
    train = replace(train, **train_overrides)
    data = DataConfig(
        train_cuts=str(data_dir / "cuts_train.jsonl.gz"),
        dev_cuts=str(data_dir / "cuts_dev.jsonl.gz"),
        max_duration=20.0,
        num_buckets=2,
    )
    return ExperimentConfig(
        tokenizer=TokenizerConfig(kind="char"), data=data, model=model, train=train
    )


def make_tiny_fsdd(
    out_dir: Path,
    num_train: int = 24,
    num_dev: int = 6,
    num_test: int = 6,
    speakers: tuple[str, ...] = ("jackson", "george"),
) -> Path:
    """Connected-digit manifests + features from a 2-speaker FSDD subset; returns the fbank dir."""
    from casnat.data.corpora.fsdd import prepare_fsdd
    from casnat.data.features import compute_features

    src = fsdd_dir()
    if src is None:
        raise FileNotFoundError(
            "FSDD not found (set CASNAT_SHARED_DATA or place ../shared/data/fsdd)"
        )
    manifests = prepare_fsdd(
        src,
        out_dir / "manifests",
        num_train=num_train,
        num_dev=num_dev,
        num_test=num_test,
        speakers=list(speakers),
        max_digits=3,
    )
    fbank = out_dir / "fbank"
    for split, path in manifests.items():
        if split == "test_isolated":
            continue
        compute_features(path, fbank, speed_perturb=None, num_jobs=1)
    return fbank


def make_cut(path: Path, text: str, sr: int | None = None) -> MonoCut:
    """A one-utterance cut of the audio file ``path`` whose supervision covers it all.

    ``sr`` given: the recording is described as 1 s at ``sr`` without opening the file, so missing
    or corrupt files can be turned into cuts (their loading then fails, as tests of that need)."""
    from lhotse import Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    if sr is None:
        rec = Recording.from_file(path)
    else:
        rec = Recording(id=path.stem, sources=[AudioSource("file", [0], str(path))],
                        sampling_rate=sr, num_samples=sr, duration=1.0)
    cut = rec.to_cut()
    cut.supervisions = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0,
                                           duration=rec.duration, channel=0, text=text)]
    return cut


def make_tone_cuts(out_dir: Path) -> CutSet:
    """Four 16 kHz noisy tones of 0.5-1.1 s with short texts (one, two three, four five six,
    seven), written to ``out_dir/tone{i}.wav``: audio any feature or dataset test can read."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet

    rng = np.random.default_rng(0)
    cuts = []
    for i, (dur, text) in enumerate([(0.5, "one"), (0.8, "two three"), (1.1, "four five six"),
                                     (0.6, "seven")]):
        t = np.arange(int(dur * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = out_dir / f"tone{i}.wav"
        sf.write(path, x.astype(np.float32), 16000)
        cuts.append(make_cut(path, text))
    return CutSet.from_cuts(cuts)


def with_bad_cuts(out_dir: Path, good: CutSet) -> CutSet:
    """``good`` interleaved with a corrupt wav, an empty wav and a missing file (text "nine"),
    written to ``out_dir``: what a loader must skip without losing the good cuts."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet

    corrupt = out_dir / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    empty = out_dir / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    missing = out_dir / "missing.wav"
    g = list(good)
    bad = [make_cut(p, "nine", sr=16000) for p in (corrupt, empty, missing)]
    return CutSet.from_cuts([g[0], bad[0], g[1], bad[1], g[2], bad[2], g[3]])


def random_log_probs(B: int, T: int, V: int, seed: int, peaky: float = 3.0) -> torch.Tensor:
    """``(B, T, V)`` float32 log-softmax of scaled Gaussian logits, peakier for larger ``peaky``."""
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(peaky * torch.randn(B, T, V, generator=g), dim=-1)


def collapse(path: list[int], blank: int = 0) -> list[int]:
    """CTC collapse: merge repeats, then drop blanks (-1 padding frames are dropped too).

    Written here independently of casnat's own collapse, as the reference tests compare it to."""
    out, prev = [], None
    for a in path:
        if a != prev and a != blank and a >= 0:
            out.append(a)
        prev = a
    return out


def path_score(lp: torch.Tensor, path: list[int]) -> torch.Tensor:
    """float32 running sum of ``lp[t, path[t]]`` in frame order (the kernels' summation order)."""
    acc = torch.tensor(0.0, dtype=torch.float32)
    for t, a in enumerate(path):
        acc = acc + lp[t, a]
    return acc


# The toy acoustic task: a vocabulary of 6 (0 blank, 1 unk, 2..4 units, 5 sos/eos) and 5 utterances.
SYNTH_V = 6
SYNTH_UTTS = [[2, 3, 4], [4, 2], [3, 3, 2], [4], [2, 4, 3, 2]]


def synthetic_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``feats (N, T, 80), feat_lens (N,), tokens (N, U) padded with -1, token_lens (N,)`` of
    ``SYNTH_UTTS``: each token is a fixed random spectral pattern held for 12 frames, with 8 frames
    of 'silence' between tokens, a toy acoustic task a small model can learn exactly."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(SYNTH_V, 80, generator=g) * 2
    silence = torch.zeros(80)
    seqs = []
    for utt in SYNTH_UTTS:
        frames = [silence.expand(8, 80)]
        for tok in utt:
            frames += [patterns[tok].expand(12, 80), silence.expand(8, 80)]
        x = torch.cat(frames) + 0.1 * torch.randn(sum(f.shape[0] for f in frames), 80, generator=g)
        seqs.append(x)
    lens = torch.tensor([s.shape[0] for s in seqs])
    feats = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    tokens = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(u) for u in SYNTH_UTTS], batch_first=True, padding_value=-1
    )
    return feats, lens, tokens, torch.tensor([len(u) for u in SYNTH_UTTS])


def overfit_config() -> ModelConfig:
    """CASS-NAT with an AT ranker, the AT trained too (loss weight 1), for ``synthetic_batch``."""
    enc, at, nat = tiny_parts(d_model=48, ffn_dim=96, conv_kernel=5, subsampling_channels=8)
    return ModelConfig(
        type="cassnat", encoder=enc, at_decoder=at, nat_decoder=nat, loss=LossConfig(at=1.0)
    )


def overfit(model: ASRModel, batch: tuple, steps: int = 300) -> ASRModel:
    """Train ``model`` on the one ``batch`` until it has learnt it; return it in eval mode.

    300 steps, not fewer: at 200 the AT decoder still dropped a repeated token in one utterance
    when a test module ran on its own, and learnt it only when an earlier test had run numba's
    parallel kernels in the process (which moves torch's float results by rounding noise)."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(*batch).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


# --------------------------------------------------------------------------- fault injection
# ``python -m casnat.testing ARGS`` runs ``casnat ARGS`` (e.g. ``train --config ...``) with the
# faults the environment variables below ask for. A real process is needed: a SIGKILL or a
# file-size limit must hit a process of its own, not the test runner. The tests and
# tools/fault_suite.py both start training through this one runner, so they inject the same
# faults the same way.

#: Writes past this many bytes fail with EFBIG (a full disk; SIGXFSZ is ignored so the write
#: fails instead of the process dying).
FAULT_FSIZE = "FAULT_FSIZE"
#: SIGKILL the process half-way through writing its N-th checkpoint (1-based, rank 0 only: the
#: only rank that writes): the temporary file holds half a checkpoint, fsynced, when it dies.
FAULT_KILL_IN_SAVE = "FAULT_KILL_IN_SAVE"
#: SIGKILL the process when it reaches the checkpoint of this optimizer step, before the step's
#: checkpoint is gathered or written; with FAULT_KILL_RANK only on that DDP rank (default 0).
#: Only on torchrun's first attempt (TORCHELASTIC_RESTART_COUNT unset or 0), so a restarted job
#: is not killed again.
FAULT_KILL_AT_STEP = "FAULT_KILL_AT_STEP"
FAULT_KILL_RANK = "FAULT_KILL_RANK"
#: On a restarted torchrun attempt, this DDP rank joins the process group last: it waits until
#: every other rank is inside ``init_process_group`` (marker files), then 1 s more. The others
#: then look up its address first, which is when a key the previous attempt left in the store is
#: read instead of the new one (the race that made restarts fail or hang). Waiting for markers,
#: not a fixed time: on a loaded machine the other ranks may start seconds later.
FAULT_SLOW_RESTART_RANK = "FAULT_SLOW_RESTART_RANK"


def _die() -> None:
    """SIGKILL this process: no handler, no atexit, no flush (what a crash or OOM kill does)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _join_last_on_restart(env: dict[str, str], slow_rank: int) -> None:
    """Make DDP rank ``slow_rank`` call ``init_process_group`` after every other rank (see
    FAULT_SLOW_RESTART_RANK); the others leave a marker file just before they call it."""
    import tempfile
    import time

    import torch.distributed as dist

    rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
    markers = Path(tempfile.gettempdir()) / f"casnat-faults-{env.get('TORCHELASTIC_RUN_ID', '')}"
    markers.mkdir(parents=True, exist_ok=True)
    orig_init = dist.init_process_group

    def init(*args, **kwargs) -> None:
        if rank != slow_rank:
            (markers / f"attempt{attempt}.rank{rank}").touch()
        else:
            others = [markers / f"attempt{attempt}.rank{r}" for r in range(world) if r != rank]
            deadline = time.monotonic() + 60
            while not all(p.exists() for p in others) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)
        orig_init(*args, **kwargs)
        if rank == slow_rank:  # every rank has joined: the markers have served
            import shutil

            shutil.rmtree(markers, ignore_errors=True)

    dist.init_process_group = init  # type: ignore[assignment]


def install_faults(env: dict[str, str] | None = None) -> None:
    """Patch the trainer in this process with the faults ``env`` (default: os.environ) names."""
    env = dict(os.environ if env is None else env)
    limit = int(env.get(FAULT_FSIZE, "0") or 0)
    if limit:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    kill_in_save = int(env.get(FAULT_KILL_IN_SAVE, "0") or 0)
    first_attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0") in ("", "0")
    kill_at_step = int(env.get(FAULT_KILL_AT_STEP, "0") or 0) if first_attempt else 0
    slow = env.get(FAULT_SLOW_RESTART_RANK, "")
    if slow and not first_attempt:
        _join_last_on_restart(env, int(slow))
    if not (kill_in_save or kill_at_step):
        return
    import casnat.atomic as atomic
    import casnat.train.trainer as trainer

    if kill_in_save:
        saves = [0]

        def half_then_die(obj: object, f) -> None:
            buf = io.BytesIO()
            torch.save(obj, buf)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            _die()

        def save(obj: object, path: str | Path) -> None:
            saves[0] += 1
            if saves[0] == kill_in_save:
                atomic.atomic_write_with(path, lambda f: half_then_die(obj, f))
            atomic.atomic_write_with(path, lambda f: torch.save(obj, f))

        trainer.atomic_torch_save = save  # type: ignore[assignment]
    if kill_at_step:
        kill_rank = int(env.get(FAULT_KILL_RANK, "0") or 0)
        rank = int(env.get("RANK", "0"))
        orig = trainer._checkpoint_state

        def checkpoint_state(*args, **kwargs):  # noqa: ANN202 - same as the wrapped function
            if rank == kill_rank and args[-1].step == kill_at_step:
                _die()
            return orig(*args, **kwargs)

        trainer._checkpoint_state = checkpoint_state  # type: ignore[assignment]


def fault_runner_main(argv: list[str]) -> int:
    """``casnat ARGV`` with the faults of the environment installed first."""
    install_faults()
    from casnat.cli import main

    return main(argv)


def load_tool(name: str):  # noqa: ANN201 - a module
    """The script ``tools/{name}.py`` of the repository as a module (tools are scripts, not a
    package; tests call their functions so the scripts cannot rot unnoticed)."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up while defining
        spec.loader.exec_module(mod)
    return sys.modules[name]


def train_subprocess(
    cfg_path: Path, exp: Path, resume: bool = False, **env: str
) -> subprocess.Popen[str]:
    """``casnat train`` on the CPU in a child process, with the faults ``env`` names (see
    :func:`install_faults`); stdout and stderr are pipes (read them with ``communicate``)."""
    args = [sys.executable, "-m", "casnat.testing", "train", "--config", str(cfg_path),
            "--exp-dir", str(exp), "--device", "cpu"] + (["--resume"] if resume else [])
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath, **env}
    return subprocess.Popen(
        args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


if __name__ == "__main__":
    sys.exit(fault_runner_main(sys.argv[1:]))
