"""Training-throughput benchmark: recipe batches, fp32 against bf16, per phase, vs the roofline.

``casnat bench-train --config egs/fsdd/conf/cassnat.yaml --config egs/synth_en/conf/cassnat.yaml``
runs, for each config, real training steps (the recipe's sampler and DataLoader, forward,
backward, gradient clipping and the AdamW step) in every precision, interleaved batch by batch so
that a noisy shared machine affects both alike, and reports:

- frames/s (input feature frames, as train.log counts them) after ``warmup`` untimed steps;
- the split of the step into waiting for data, forward (without the alignment op), the CTC
  Viterbi alignment op, backward and optimizer, from :mod:`casnat.profiling` phases;
- achieved GFLOP/s of the matmuls/convolutions (FLOPs counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` on the same batches) for the whole step and
  for the encoder alone (its forward + backward timed separately), against fp32 and bf16 GEMM
  peaks measured in the same run.

Where a recipe's data is not prepared (``data.train_cuts`` missing; relative paths start from the
current directory, as for ``casnat train`` in the recipe dir) or ``build`` is asked, a small
corpus of the same kind is built in the work dir: FSDD connected digits from the shared wavs
(``prepare_fsdd``) or synth_en sentences synthesised with the recipe's TTS voices
(``prepare_synth_en``), with stored fbank as the recipes use, so batches have the recipe's
shapes (same max_duration, same sampler).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from casnat.config import ExperimentConfig, FeatureConfig, load_config
from casnat.models.asr import ASRModel
from casnat.profiling import PhaseRecorder, phase
from casnat.train.distributed import DistInfo
from casnat.train.experiment import prepare_experiment
from casnat.train.precision import Precision, resolve_precision
from casnat.train.trainer import _make_optimizer

log = logging.getLogger(__name__)

PHASES = ("data", "forward", "align", "backward", "optimizer")
GEMM_SHAPES = ((2048, 576, 144), (2048, 2048, 2048))  # (M, K, N): an FFN layer, a big square


@dataclass(frozen=True)
class BenchOptions:
    """What to run. ``train_cuts``: a manifest per config, in order (None: the recipe's)."""

    configs: tuple[Path, ...]
    work_dir: Path
    train_cuts: tuple[Path | None, ...] = ()
    precisions: tuple[str, ...] = ("fp32", "bf16")
    steps: int = 6
    warmup: int = 2
    num_threads: int = 2
    num_utts: int = 240  # utterances of a corpus built when the recipe's data is missing
    max_duration: float | None = None  # override data.max_duration (seconds per batch)
    num_workers: int | None = None  # override data.num_workers
    compile_encoder: bool = False  # torch.compile(dynamic=True) the encoder (inductor)
    gemm_reps: int = 5  # timings per GEMM shape and dtype (the best counts)
    torch_ops: bool = False  # also time fp32 with torch's dropout and NCHW convs ("fp32-torch-ops")


@dataclass
class PrecisionRun:
    """One precision on one config: summed phase seconds and frames of the timed steps."""

    precision: str
    frames: int = 0
    steps: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    encoder_seconds: float = 0.0  # encoder forward + backward alone, on the same batches

    @property
    def step_seconds(self) -> float:
        # "align" runs inside "forward": not added twice.
        return sum(v for k, v in self.seconds.items() if k != "align")

    @property
    def frames_per_s(self) -> float:
        return self.frames / max(self.step_seconds, 1e-9)


@dataclass
class ConfigRun:
    name: str
    data: str  # where the batches came from
    utts_per_step: float
    frames_per_step: float
    step_flops: float  # per step (forward + backward), matmuls and convolutions
    encoder_flops: float
    runs: dict[str, PrecisionRun]


def measure_gemm_peaks(reps: int = 5, max_call_s: float = 0.25) -> dict[str, float]:
    """Best GFLOP/s of fp32 and bf16 matmuls over :data:`GEMM_SHAPES`, at the current threads.

    Shapes run smallest first, and a dtype stops before a shape whose single product would take
    longer than ``max_call_s`` at the rate measured so far (or after one that did): on a CPU
    without native bf16 oneDNN emulates it at a few GFLOP/s or less, where one 2048^3 product
    takes up to a minute; the small shape already says so.
    """
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for m, k, n in sorted(GEMM_SHAPES, key=lambda s: s[0] * s[1] * s[2]):
            if best > 0 and 2 * m * k * n / (best * 1e9) > max_call_s:
                break  # at the rate measured so far, one product of this shape would be too slow
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            t0 = time.perf_counter()
            torch.mm(a, b)  # warm-up, and a first estimate of the rate
            first = time.perf_counter() - t0
            best = max(best, 2 * m * k * n / first / 1e9)
            if first > max_call_s:
                break
            inner = max(1, min(int(2e9 // (2 * m * k * n)), int(0.5 / max(first, 1e-6))))
            for _ in range(reps):
                t0 = time.perf_counter()
                for _ in range(inner):
                    torch.mm(a, b)
                best = max(best, 2 * m * k * n * inner / (time.perf_counter() - t0) / 1e9)
        peaks[name] = best
    return peaks


def default_precisions() -> tuple[str, ...]:
    """fp32 and bf16 where the CPU runs bf16 natively; fp32 alone where bf16 would be emulated
    (a bf16 training step there takes minutes and says nothing ``amp_dtype: auto`` would use)."""
    from casnat.train.precision import cpu_bf16_support

    return ("fp32", "bf16") if cpu_bf16_support()[0] else ("fp32",)


TORCH_OPS = "fp32-torch-ops"


def use_torch_ops(model: torch.nn.Module) -> torch.nn.Module:
    """Undo casnat's CPU kernels in ``model``: ``torch.nn.Dropout`` for casnat's dropout and
    contiguous (NCHW) conv weights, i.e. the trainer as it ran before them (the baseline row)."""
    from casnat.nn.dropout import Dropout

    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, Dropout):
                setattr(parent, name, torch.nn.Dropout(child.p))
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.contiguous()
    return model


def _recipe_dir(config: Path) -> Path:
    """``egs/X/conf/Y.yaml`` -> ``egs/X`` (the directory the recipe's relative paths start from)."""
    config = config.resolve()
    return config.parent.parent if config.parent.name == "conf" else config.parent


def _build_corpus(kind: str, out: Path, num_utts: int, features: FeatureConfig) -> Path:
    """A small corpus like the recipe's, with stored fbank computed as ``features`` says;
    returns its train cuts manifest. Configs with different front ends get their own copy."""
    from casnat.data.features import compute_features, feature_record
    from casnat.testing import fsdd_dir, shared_data_dir

    tag = "_".join(f"{v}" for v in feature_record(features).values())
    done = out / f"fbank_{tag}" / "cuts_train.jsonl.gz"
    if done.is_file():
        return done
    if kind == "fsdd":
        from casnat.data.corpora.fsdd import prepare_fsdd

        src = fsdd_dir()
        if src is None:
            raise FileNotFoundError("bench-train: FSDD wavs not found (set CASNAT_SHARED_DATA)")
        manifests = prepare_fsdd(src, out / "manifests", num_train=num_utts, num_dev=2,
                                 num_test=2)
    elif kind == "synth_en":
        from casnat.data.corpora.synth_en import prepare_synth_en

        shared = shared_data_dir()
        if shared is None or not (shared / "text").is_dir():
            raise FileNotFoundError("bench-train: shared/data/text not found for synth_en")
        manifests = prepare_synth_en(shared / "text", out / "manifests", num_train=num_utts,
                                     num_dev=1, num_test=1, num_jobs=2)
    else:
        raise FileNotFoundError(f"bench-train: no data for recipe {kind!r} and no builder for it")
    return compute_features(manifests["train"], done.parent, speed_perturb=None, num_jobs=2,
                            cfg=features)


def _train_cuts(config: Path, cfg: ExperimentConfig, override: Path | None, opts: BenchOptions
                ) -> tuple[Path, str]:
    """The manifest to draw batches from: ``override``, else ``data.train_cuts`` (relative to the
    current directory, as for ``casnat train`` run in the recipe dir), else a built corpus.
    ``override`` ``build`` always builds one."""
    recipe = _recipe_dir(config).name
    if override is not None and str(override) != "build":
        return override, str(override)
    path = Path(cfg.data.train_cuts)
    if override is None and path.is_file():
        return path, str(path.resolve())
    built = _build_corpus(recipe, opts.work_dir / f"data_{recipe}", opts.num_utts, cfg.features)
    return built, f"built {opts.num_utts} {recipe} utterances with stored fbank"


def _batches(loader, sampler) -> Iterator:
    """Training batches without end: the next epoch starts when one ends (as the trainer does)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            if batch.feats.size(0):
                yield batch
        epoch += 1


def _args(batch) -> tuple[torch.Tensor, ...]:
    return batch.feats, batch.feat_lens, batch.tokens, batch.token_lens


def _train_step(model: ASRModel, opt: torch.optim.Optimizer, prec: Precision, batch,
                grad_clip: float) -> None:
    """The trainer's step (accum_grad 1, no GradScaler on CPU), marked by phase."""
    with phase("forward"), prec.autocast():
        losses = model(*_args(batch))
    with phase("backward"):
        losses.total.backward()
    with phase("optimizer"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)


def _encoder_pass(model: ASRModel, prec: Precision, batch) -> None:
    """The encoder alone: forward and backward (what the encoder column times and counts)."""
    with prec.autocast():
        out = model.encode(batch.feats, batch.feat_lens)
    out.out.float().sum().backward()
    model.zero_grad(set_to_none=True)


def _count_flops(model: ASRModel, batches: list) -> tuple[float, float]:
    """Mean FLOPs per step (forward + backward) of the whole model and of its encoder alone."""
    fp32 = resolve_precision(torch.device("cpu"), amp=False)
    with FlopCounterMode(display=False) as step:
        for b in batches:
            model(*_args(b)).total.backward()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as enc:
        for b in batches:
            _encoder_pass(model, fp32, b)
    return step.get_total_flops() / len(batches), enc.get_total_flops() / len(batches)


def bench_config(config: Path, override: Path | None, opts: BenchOptions) -> ConfigRun:
    """Time real training steps of one config in each precision, interleaved batch by batch."""
    cfg = load_config(config)
    train_cuts, where = _train_cuts(config, cfg, override, opts)
    data = replace(cfg.data, train_cuts=str(train_cuts), dev_cuts="")
    if opts.max_duration is not None:
        data = replace(data, max_duration=opts.max_duration)
    if opts.num_workers is not None:
        data = replace(data, num_workers=opts.num_workers)
    cfg = replace(cfg, data=data)
    name = _recipe_dir(config).name + "/" + config.stem
    exp_dir = opts.work_dir / f"exp_{name.replace('/', '_')}"
    exp_dir.mkdir(parents=True, exist_ok=True)
    exp = prepare_experiment(cfg, exp_dir, DistInfo(0, 1, 0, torch.device("cpu")))

    cpu = torch.device("cpu")
    precs, models, opts_, runs = {}, {}, {}, {}
    variants = list(opts.precisions) + ([TORCH_OPS] if opts.torch_ops else [])
    for p in variants:
        precs[p] = resolve_precision(cpu, amp=True, amp_dtype="fp32" if p == TORCH_OPS else p)
        torch.manual_seed(cfg.train.seed)  # the same initial weights in every precision
        model = ASRModel(cfg.model, exp.tokenizer.vocab_size, cfg.features.num_mel_bins)
        model.set_cmvn(exp.cmvn_mean, exp.cmvn_std)
        if p == TORCH_OPS:
            use_torch_ops(model)
        if opts.compile_encoder:
            model.encoder = torch.compile(model.encoder, dynamic=True)
        model.train()
        models[p], opts_[p], runs[p] = model, _make_optimizer(model, cfg), PrecisionRun(p)
    recorders = {p: PhaseRecorder() for p in variants}

    it = _batches(exp.train_loader, exp.sampler)
    timed: list = []
    for i in range(opts.warmup + opts.steps):
        t0 = time.perf_counter()
        batch = next(it)
        wait = time.perf_counter() - t0
        for p in variants:
            if i < opts.warmup:
                _train_step(models[p], opts_[p], precs[p], batch, cfg.train.grad_clip)
                continue
            with recorders[p]:
                _train_step(models[p], opts_[p], precs[p], batch, cfg.train.grad_clip)
            runs[p].seconds["data"] += wait
            runs[p].frames += int(batch.feat_lens.sum())
            runs[p].steps += 1
        if i >= opts.warmup:
            timed.append(batch)
        log.info("bench-train %s: step %d/%d", name, i + 1, opts.warmup + opts.steps)
    for p, rec in recorders.items():
        for k, v in rec.seconds.items():
            # The model's own finer phases (CASS-NAT segments, TAE, ...) run inside "forward".
            if k in runs[p].seconds:
                runs[p].seconds[k] += v
        runs[p].seconds["forward"] -= runs[p].seconds["align"]  # exclusive forward time

    for batch in timed:  # the encoder alone, forward + backward, interleaved as well
        for p in variants:
            t0 = time.perf_counter()
            _encoder_pass(models[p], precs[p], batch)
            runs[p].encoder_seconds += time.perf_counter() - t0

    torch.manual_seed(cfg.train.seed)
    plain = ASRModel(cfg.model, exp.tokenizer.vocab_size, cfg.features.num_mel_bins)
    step_flops, enc_flops = _count_flops(plain, timed)
    n = len(timed)
    return ConfigRun(
        name=name,
        data=where,
        utts_per_step=sum(b.feats.size(0) for b in timed) / n,
        frames_per_step=sum(int(b.feat_lens.sum()) for b in timed) / n,
        step_flops=step_flops,
        encoder_flops=enc_flops,
        runs=runs,
    )


def run_benchmark(opts: BenchOptions) -> tuple[list[ConfigRun], dict[str, float]]:
    """Every config of ``opts``, plus the GEMM peaks measured (twice: before and after)."""
    torch.set_num_threads(opts.num_threads)
    torch.set_flush_denormal(True)
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    peaks = measure_gemm_peaks(opts.gemm_reps)
    overrides = list(opts.train_cuts) + [None] * (len(opts.configs) - len(opts.train_cuts))
    results = [bench_config(c, o, opts) for c, o in zip(opts.configs, overrides, strict=True)]
    after = measure_gemm_peaks(opts.gemm_reps)
    peaks = {k: max(peaks[k], after[k]) for k in peaks}
    return results, peaks


def format_report(results: list[ConfigRun], peaks: dict[str, float], opts: BenchOptions) -> str:
    """The Markdown tables: throughput and phases, then FLOP rates against the peaks."""
    from casnat import openmp
    from casnat.train.precision import cpu_bf16_support

    load = os.getloadavg()
    native, why = cpu_bf16_support()
    lines = [
        f"Threads {opts.num_threads}; {opts.warmup} warm-up + {opts.steps} timed steps per "
        f"precision, interleaved; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"GEMM peaks: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s "
        f"(best of {', '.join('x'.join(map(str, s)) for s in GEMM_SHAPES)}"
        f"{'' if native else '; bf16 is emulated here: ' + why}). OpenMP waits: "
        f"{openmp.decision}.",
        "",
        "| config | precision | utts/step | frames/step | step s | frames/s | x fp32 "
        "| data % | forward % | align % | backward % | optimizer % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = r.runs.get("fp32")
        for p, run in r.runs.items():
            st = run.step_seconds
            ratio = run.frames_per_s / base.frames_per_s if base else float("nan")
            # align with 2 decimals: a small share, but the one the C++ op was written for
            pct = " | ".join(
                f"{100 * run.seconds[k] / st:.{2 if k == 'align' else 1}f}" for k in PHASES
            )
            lines.append(
                f"| {r.name} | {p} | {r.utts_per_step:.1f} | {r.frames_per_step:.0f} "
                f"| {st / run.steps:.3f} | {run.frames_per_s:.0f} | {ratio:.2f} | {pct} |"
            )
    lines += [
        "",
        "| config | precision | step GFLOP | step GFLOP/s | % fp32 peak | % bf16 peak "
        "| encoder GFLOP | encoder s | encoder GFLOP/s | encoder % bf16 peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for p, run in r.runs.items():
            rate = r.step_flops * run.steps / max(run.step_seconds, 1e-9) / 1e9
            enc_s = run.encoder_seconds / max(run.steps, 1)
            enc_rate = r.encoder_flops / max(enc_s, 1e-9) / 1e9
            lines.append(
                f"| {r.name} | {p} | {r.step_flops / 1e9:.1f} | {rate:.0f} "
                f"| {100 * rate / peaks['fp32']:.0f} | {100 * rate / peaks['bf16']:.0f} "
                f"| {r.encoder_flops / 1e9:.1f} | {enc_s:.3f} | {enc_rate:.0f} "
                f"| {100 * enc_rate / peaks['bf16']:.0f} |"
            )
    lines += ["", "Data: " + "; ".join(f"{r.name}: {r.data}" for r in results), ""]
    return "\n".join(lines)


__all__ = ["BenchOptions", "ConfigRun", "PrecisionRun", "bench_config", "format_report",
           "default_precisions", "measure_gemm_peaks", "run_benchmark", "use_torch_ops"]
