"""The training loop: one function, ``train``, that reads as its list of steps.

Single process (``casnat train``) and DDP (``torchrun --nproc_per_node=N -m casnat.bin.train``)
share this code: the only differences are the sampler shard (rank, world size) and the DDP wrapper.
A DDP run ends by checking that every rank holds the same weights (rank 0 saves them) and logs
the result: ``weights identical on all N ranks``, or an error with the largest difference.

Resumability: a step checkpoint holds model, optimizer, scheduler, grad scaler, sampler state,
epoch, step and RNG states, and is written atomically; ``resume=True`` continues from the newest
one with the same data order (lhotse samplers restore their position from their state dict).
The resume is exact with ``data.num_workers: 0``; with workers the DataLoader has already drawn
up to ``2 * num_workers`` batches beyond the checkpoint, and those are skipped on resume.
Under ``torchrun --max-restarts=N`` a restarted job (one worker died, torchrun restarts them all)
always resumes, with or without ``--resume``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from casnat.atomic import atomic_torch_save
from casnat.checkpoint import (
    epoch_checkpoints,
    latest_valid_checkpoint,
    prune,
    step_checkpoints,
)
from casnat.config import ConfigError, ExperimentConfig, save_config
from casnat.errors import UserError
from casnat.models.asr import ASRModel
from casnat.nn import count_parameters
from casnat.train.distributed import (
    DistInfo,
    all_reduce_sum,
    cleanup,
    gather_per_rank,
    init_distributed,
    max_weight_difference,
)
from casnat.train.experiment import prepare_experiment
from casnat.train.logger import TrainLogger
from casnat.train.precision import resolve_precision
from casnat.train.scheduler import make_scheduler

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Counters that a checkpoint restores."""

    epoch: int = 0
    step: int = 0  # optimizer steps so far
    batches_in_epoch: int = 0
    best_valid: float = math.inf
    # Cuts of this rank dropped for unreadable audio. Counted from the batches, not the dataset
    # object: with DataLoader workers each worker holds its own copy of the dataset.
    skipped_audio: int = 0
    # Optimizer steps skipped for a non-finite loss or gradient (all of them, and the current run
    # of consecutive ones, which train.max_nonfinite_steps bounds).
    nonfinite_steps: int = 0
    nonfinite_in_row: int = 0
    # Where the run ends (and a cosine LR schedule anneals to its floor): 0 = train.max_steps.
    # Set once, when train.max_minutes will run out first (see _fit_schedule_to_budget).
    schedule_end: int = 0


class TrainingDivergedError(UserError, RuntimeError):
    """Too many consecutive optimizer steps had a non-finite loss or gradient."""


@dataclass(frozen=True)
class TrainSummary:
    steps: int
    epochs: int
    minutes: float
    last_valid_loss: float
    exp_dir: Path


def _make_optimizer(model: torch.nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(),
        lr=cfg.train.peak_lr,
        betas=(0.9, 0.98),
        eps=1e-9,
        weight_decay=cfg.train.weight_decay,
    )


@torch.no_grad()
def validate(model: ASRModel, loader, device: torch.device) -> float:
    """Mean total loss per utterance on the dev set, summed over ranks."""
    model.eval()
    tot = torch.zeros(2, dtype=torch.float64)
    for batch in loader:
        losses = model(
            batch.feats.to(device),
            batch.feat_lens.to(device),
            batch.tokens.to(device),
            batch.token_lens.to(device),
        )
        tot += torch.tensor(
            [float(losses.total) * losses.num_utts, losses.num_utts], dtype=torch.float64
        )
    tot = all_reduce_sum(tot)
    model.train()
    return float(tot[0] / tot[1].clamp(min=1))


def _checkpoint_state(
    model,
    optimizer,
    scheduler,
    scaler,
    sampler,
    dataset_generator: torch.Generator | None,
    state: TrainState,
) -> dict:
    """Everything a resume needs. The per-rank parts (sampler positions, skipped-audio counts,
    the dataset's SpecAugment RNG) are gathered from every rank, in rank order."""
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    return {
        "model": raw.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "samplers": gather_per_rank(sampler.state_dict()),
        "epoch": state.epoch,
        "step": state.step,
        "batches_in_epoch": state.batches_in_epoch,
        "best_valid": state.best_valid,
        "skipped_audio": gather_per_rank(state.skipped_audio),
        "nonfinite_steps": state.nonfinite_steps,
        "nonfinite_in_row": state.nonfinite_in_row,
        "schedule_end": state.schedule_end,
        "torch_rng": torch.get_rng_state(),
        "dataset_rng": (
            gather_per_rank(dataset_generator.get_state())
            if dataset_generator is not None
            else None
        ),
    }


def train(
    cfg: ExperimentConfig,
    exp_dir: str | Path,
    resume: bool = False,
    device: str | None = None,
    dump_batch_ids: bool = False,
) -> TrainSummary:
    """Train the model described by ``cfg`` into ``exp_dir``."""
    exp_dir = Path(exp_dir)
    info: DistInfo = init_distributed(prefer_cuda=device != "cpu")
    dev = torch.device(device) if device and info.world_size == 1 else info.device
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    # Denormal floats (tiny activations/gradients once training starts) make CPU arithmetic
    # 10-100x slower; flushing them to zero costs nothing in accuracy.
    torch.set_flush_denormal(True)
    exp_dir.mkdir(parents=True, exist_ok=True)
    logger = TrainLogger(exp_dir, rank=info.rank)
    if info.restart_count > 0:
        # torchrun --max-restarts started this job again after a worker died; it reruns the
        # same command, so without this a run started without --resume would begin from
        # scratch and overwrite the checkpoints it is meant to continue from.
        logger.info(
            f"torchrun restart {info.restart_count} (of at most "
            f"{os.environ.get('TORCHELASTIC_MAX_RESTARTS', '?')}): resuming from the newest "
            "checkpoint"
        )
        resume = True
    try:
        return _train(cfg, exp_dir, resume, dev, info, logger, dump_batch_ids)
    finally:
        logger.close()  # also on errors: no log handler outlives the run
        cleanup()


def _train(
    cfg: ExperimentConfig,
    exp_dir: Path,
    resume: bool,
    dev: torch.device,
    info: DistInfo,
    logger: TrainLogger,
    dump_batch_ids: bool,
) -> TrainSummary:
    torch.manual_seed(cfg.train.seed)
    if info.is_main:
        save_config(cfg, exp_dir / "config.yaml")

    # 1. Tokenizer, CMVN and data loaders (built once on rank 0, read by the others).
    exp = prepare_experiment(cfg, exp_dir, info)
    train_loader, sampler, train_dataset = exp.train_loader, exp.sampler, exp.train_dataset
    # The dataset's SpecAugment RNG: saved per rank in every checkpoint, restored on resume.
    gen: torch.Generator = train_dataset.generator

    # 2. Model, optimizer, schedule.
    model = ASRModel(cfg.model, exp.tokenizer.vocab_size, cfg.features.num_mel_bins)
    model.set_cmvn(exp.cmvn_mean, exp.cmvn_std)
    logger.info(
        f"model type={cfg.model.type} params={count_parameters(model) / 1e6:.2f}M "
        f"(encoder {count_parameters(model.encoder) / 1e6:.2f}M) vocab={exp.tokenizer.vocab_size} "
        f"device={dev} world_size={info.world_size}"
    )
    model.to(dev)
    optimizer = _make_optimizer(model, cfg)
    tc = cfg.train
    # The scheduler reads state.schedule_end through run_end: a resume updates state in place.
    state = TrainState()

    def run_end() -> int:
        """The step the run ends at (0: none): the budget-fitted one, else train.max_steps."""
        return state.schedule_end or tc.max_steps or 0

    try:
        scheduler = make_scheduler(
            optimizer, tc.lr_schedule, tc.warmup_steps, tc.max_steps, tc.min_lr_ratio,
            end=run_end,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    prec = resolve_precision(dev, tc.amp, tc.amp_dtype)
    logger.info(prec.describe())
    if dev.type == "cpu":
        from casnat import openmp

        logger.info(f"OpenMP waits: {openmp.decision}")
    scaler = torch.amp.GradScaler("cuda", enabled=prec.grad_scaler)

    # 3. Resume from the newest checkpoint, if asked and one exists. A damaged one (writes are
    # atomic, so only the disk or a person can damage one) is named in a warning and the
    # previous one is used; when none is usable the run stops with one line naming them.
    if info.is_main:
        _remove_stale_temp_files(exp_dir, logger)
    found = latest_valid_checkpoint(exp_dir, _RESUME_KEYS, map_location=dev) if resume else None
    ckpt_path = found[0] if found else None
    if found is not None:
        ck = found[1]
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        samplers = ck["samplers"]
        if len(samplers) != info.world_size:
            raise RuntimeError(
                f"{ckpt_path} was written by {len(samplers)} processes; resume with as many "
                f"(now {info.world_size}) to keep the data order"
            )
        sampler.load_state_dict(samplers[info.rank])
        skipped = ck.get("skipped_audio") or [0] * info.world_size
        restored = TrainState(
            ck["epoch"],
            ck["step"],
            ck["batches_in_epoch"],
            ck["best_valid"],
            skipped[info.rank],
            ck.get("nonfinite_steps", 0),
            ck.get("nonfinite_in_row", 0),
            ck.get("schedule_end", 0),
        )
        for f in dataclasses.fields(TrainState):
            setattr(state, f.name, getattr(restored, f.name))
        torch.set_rng_state(ck["torch_rng"])
        if gen is not None and ck.get("dataset_rng") is not None:
            gen.set_state(ck["dataset_rng"][info.rank])
        logger.info(f"resumed from {ckpt_path} at epoch {state.epoch} step {state.step}")
    elif resume:
        logger.info(f"--resume: no checkpoint in {exp_dir}, starting from scratch")

    ddp_model: torch.nn.Module = model
    if info.world_size > 1:
        ddp_model = DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    # 4. The loop.
    t_start = time.monotonic()
    step_at_start = state.step
    deadline = t_start + tc.max_minutes * 60 if tc.max_minutes else None
    budget_check_step = _budget_check_step(tc)
    batch_log = (exp_dir / f"batches.rank{info.rank}.txt").open("a") if dump_batch_ids else None
    valid_loss = math.nan
    stop = False
    resumed_mid_epoch = ckpt_path is not None and state.batches_in_epoch > 0
    while state.epoch < tc.max_epochs and not stop:
        if not resumed_mid_epoch:
            sampler.set_epoch(state.epoch)
            state.batches_in_epoch = 0
        resumed_mid_epoch = False
        ddp_model.train()
        accum = 0
        # Every micro-batch of the current optimizer step had a finite loss: a tensor on the
        # device, read once per step with the gradient norm (one host sync, as before).
        loss_finite: torch.Tensor | bool = True
        frames_window = 0
        t_window = time.monotonic()
        for batch in train_loader:
            state.skipped_audio += batch.num_skipped
            if batch.feats.size(0) == 0:  # every cut of the batch had unreadable audio
                continue
            if batch_log is not None:
                batch_log.write(f"{state.epoch} {' '.join(batch.cut_ids)}\n")
                batch_log.flush()
            state.batches_in_epoch += 1
            accum += 1
            sync = accum % tc.accum_grad == 0
            ctx = ddp_model.no_sync() if (info.world_size > 1 and not sync) else nullcontext()
            with ctx:
                with prec.autocast():
                    losses = ddp_model(
                        batch.feats.to(dev),
                        batch.feat_lens.to(dev),
                        batch.tokens.to(dev),
                        batch.token_lens.to(dev),
                    )
                scaler.scale(losses.total / tc.accum_grad).backward()
            loss_finite = torch.isfinite(losses.total.detach()) & loss_finite
            frames_window += int(batch.feat_lens.sum())
            if not sync:
                continue
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            bad = _nonfinite_step(loss_finite, grad_norm, scaler.is_enabled(), info)
            if not bad:  # with a grad scaler, its step skips an overflowing gradient itself
                scaler.step(optimizer)
            scaler.update()
            loss_finite = True
            if bad:
                state.nonfinite_steps += 1
                state.nonfinite_in_row += 1
                loss_val, norm_val = float(losses.total), float(grad_norm)
                logger.warning(
                    f"step {state.step}: non-finite loss or gradient (loss={loss_val:.4g} "
                    f"grad_norm={norm_val:.4g}), update skipped "
                    f"({state.nonfinite_in_row} in a row, {state.nonfinite_steps} in all)"
                )
                if 0 < tc.max_nonfinite_steps <= state.nonfinite_in_row:
                    raise TrainingDivergedError(
                        f"training stopped at step {state.step}: {state.nonfinite_in_row} steps "
                        f"in a row had a non-finite loss or gradient (train.max_nonfinite_steps="
                        f"{tc.max_nonfinite_steps}); lower train.peak_lr or check the data, and "
                        f"--resume from the last checkpoint in {exp_dir}"
                    )
            else:
                state.nonfinite_in_row = 0
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            if state.step == budget_check_step and deadline and not state.schedule_end:
                state.schedule_end = _fit_schedule_to_budget(
                    state.step, state.step - step_at_start, t_start, deadline, tc, logger,
                    world_size=info.world_size,
                )
            scheduler.step()

            if state.step % tc.log_interval == 0:
                elapsed = time.monotonic() - t_window
                rate = frames_window / max(elapsed, 1e-9)
                logger.log_step(
                    state,
                    losses.parts(),
                    lr=scheduler.get_last_lr()[0],
                    frames_per_s=rate,
                    grad_norm=float(grad_norm),
                    eta_s=_eta(state, tc, t_start, deadline, sampler),
                    skipped=state.skipped_audio,
                )
                if state.nonfinite_steps:
                    logger.info(f"step {state.step}: nonfinite_skipped={state.nonfinite_steps}")
                frames_window, t_window = 0, time.monotonic()
            if state.step % tc.checkpoint_every_steps == 0:
                ck = _checkpoint_state(model, optimizer, scheduler, scaler, sampler, gen, state)
                if info.is_main:
                    atomic_torch_save(ck, exp_dir / f"ckpt-{state.step}.pt")
                    prune(step_checkpoints(exp_dir), keep=2)
            if (run_end() and state.step >= run_end()) or (
                deadline and time.monotonic() > deadline
            ):
                stop = True
                break
        # End of epoch (or budget): validate and save.
        valid_loss = (
            validate(model, exp.valid_loader, dev) if exp.valid_loader is not None else math.nan
        )
        state.best_valid = (
            min(state.best_valid, valid_loss) if not math.isnan(valid_loss) else state.best_valid
        )
        epoch_done = not stop
        if epoch_done:
            state.epoch += 1
            state.batches_in_epoch = 0
        logger.log_epoch(
            state, valid_loss, minutes=(time.monotonic() - t_start) / 60, complete=epoch_done
        )
        ck = _checkpoint_state(model, optimizer, scheduler, scaler, sampler, gen, state)
        if info.is_main:
            if epoch_done:
                atomic_torch_save(ck, exp_dir / f"epoch-{state.epoch}.pt")
                prune(epoch_checkpoints(exp_dir), keep=tc.keep_last)
            atomic_torch_save(ck, exp_dir / f"ckpt-{state.step}.pt")
            prune(step_checkpoints(exp_dir), keep=2)
    if info.world_size > 1:
        # DDP syncs buffers from rank 0 before each forward, so after the last forward the BatchNorm
        # running statistics differ per rank; make every rank end with rank 0's (the saved ones).
        for buf in model.buffers():
            dist.broadcast(buf, src=0)
        _check_ranks_agree(model, info, logger)
    if batch_log is not None:
        batch_log.close()
    minutes = (time.monotonic() - t_start) / 60
    skipped_total = int(all_reduce_sum(torch.tensor([state.skipped_audio]))[0])
    logger.info(
        f"training finished: {state.step} steps, {state.epoch} epochs, {minutes:.1f} min, "
        f"skipped audio files: {skipped_total} (cuts dropped for unreadable audio, all ranks), "
        f"non-finite steps skipped: {state.nonfinite_steps}"
    )
    if info.world_size > 1:
        dist.barrier()
    return TrainSummary(state.step, state.epoch, minutes, valid_loss, exp_dir)


# What a step checkpoint must hold for a resume (an older or foreign .pt is not resumable).
_RESUME_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "samplers",
    "epoch",
    "step",
    "batches_in_epoch",
    "best_valid",
    "torch_rng",
)


def _remove_stale_temp_files(exp_dir: Path, logger: TrainLogger) -> None:
    """Delete the temporary files of checkpoint writes a killed run left behind (they are never
    read: an atomic write only renames a complete file into place), so kills do not fill the
    disk. Only ``.ckpt-*``/``.epoch-*`` ones: nothing else of the directory is touched."""
    for pattern in (".ckpt-*.pt.*.tmp", ".epoch-*.pt.*.tmp"):
        for tmp in exp_dir.glob(pattern):
            logger.info(f"removing {tmp.name}, a checkpoint write a killed run left unfinished")
            tmp.unlink(missing_ok=True)


def _nonfinite_step(
    loss_finite: torch.Tensor | bool, grad_norm: torch.Tensor, grad_scaler: bool, info: DistInfo
) -> bool:
    """Whether this optimizer step counts as non-finite (and its update is skipped).

    A non-finite loss always counts. A non-finite gradient norm counts without a grad scaler;
    with one (fp16) it is the scaler's normal overflow signal (it skips the step and lowers its
    scale) and is not counted. The gradient norm is the same on every DDP rank (gradients are
    all-reduced), but a loss is per rank: the flag is all-reduced so all ranks skip together."""
    ok = torch.as_tensor(loss_finite, device=grad_norm.device)
    if not grad_scaler:
        ok = ok & torch.isfinite(grad_norm)
    if info.world_size > 1:
        return bool(all_reduce_sum((~ok).float().reshape(1))[0] > 0)
    return not bool(ok)


def _check_ranks_agree(model: torch.nn.Module, info: DistInfo, logger: TrainLogger) -> None:
    """Log whether every rank ends a DDP run with the same weights (rank 0's are the saved ones);
    an error, not an exception, when they differ: the checkpoints are written already."""
    diff = max_weight_difference(model)
    if diff == 0.0:
        logger.info(f"weights identical on all {info.world_size} ranks")
    else:
        logger.error(
            f"weights differ between the {info.world_size} ranks: max abs difference {diff:.3e} "
            "(the checkpoints hold rank 0's)"
        )


def _budget_check_step(tc) -> int:
    """The step at which the run's pace is measured against train.max_minutes: the end of the
    LR warm-up (the decay has not begun, so moving its end changes no LR already used), and at
    least 20 steps in, for a stable rate."""
    return max(20, tc.warmup_steps)


def _fit_schedule_to_budget(step: int, steps_run: int, t_start: float, deadline: float, tc,
                            logger, now: float | None = None, world_size: int = 1) -> int:
    """The step where the run will end: train.max_steps, or fewer when train.max_minutes will
    run out first at the pace measured so far (with 5% kept for validation and checkpoints).

    Without this a time-capped run on a slower machine stops part-way down its cosine, at a high
    learning rate, and is much worse than the same minutes spent on a schedule that ends when
    the time does. Every rank gets the same step (the mean of their estimates)."""
    now = time.monotonic() if now is None else now
    per_step = (now - t_start) / max(1, steps_run)
    fit = step + 0.95 * (deadline - now) / max(per_step, 1e-9)
    fit = float(all_reduce_sum(torch.tensor([fit], dtype=torch.float64))[0]) / max(1, world_size)
    fit_steps = max(step + 1, int(fit))
    if tc.max_steps and fit_steps >= tc.max_steps:
        return 0  # max_steps fits: nothing changes
    what = f"of train.max_steps={tc.max_steps} " if tc.max_steps else ""
    logger.info(
        f"step {step}: {per_step:.2f} s/step leaves time for ~{fit_steps} steps {what}in "
        f"train.max_minutes={tc.max_minutes}; the run ends there"
        + (" and the cosine LR schedule anneals by then" if tc.lr_schedule == "cosine" else "")
    )
    return fit_steps


def _eta(state: TrainState, tc, t_start: float, deadline: float | None, sampler) -> float:
    """Seconds left by the step, epoch or wall-clock budget, whichever ends first."""
    elapsed = time.monotonic() - t_start
    candidates = []
    if deadline:
        candidates.append(deadline - time.monotonic())
    if tc.max_steps and state.step:
        candidates.append(elapsed / state.step * (tc.max_steps - state.step))
    # Steps per epoch are known once an epoch has finished (lhotse samplers have no length).
    steps_per_epoch = state.step / state.epoch if state.epoch else None
    if steps_per_epoch and state.step:
        total = steps_per_epoch * tc.max_epochs
        candidates.append(elapsed / state.step * max(0.0, total - state.step))
    return min(candidates) if candidates else math.nan
