"""How long torch's OpenMP threads spin before they sleep, chosen for CPU training with workers.

On a 2-core CPU a training run with DataLoader workers (on-the-fly features and augmentation)
has more runnable threads than cores: the model step's 2 OpenMP threads and the worker. GNU
OpenMP (torch's CPU wheels ship libgomp) lets an idle thread spin for ~300k iterations before
it sleeps, so at every barrier between ops the step's threads burn the core the worker needs,
and a worker that does get the core leaves the step's other thread spinning on the barrier.
Measured on the fsdd default (augmented, bf16, 2 cores): 7,700 frames/s with libgomp's default
spin, 12,000-12,500 with ``GOMP_SPINCOUNT=2000``, 10,900 with ``OMP_WAIT_POLICY=PASSIVE``.
Without workers the long spin is the faster one (16,000 vs 14,000 frames/s), so the short spin
is set only for a run whose config has ``data.num_workers > 0``.

libgomp reads these variables once, when torch loads it, so :func:`configure_for_command`
must run before the first ``import torch`` of the process (the ``casnat`` CLI and
``python -m casnat.bin.train`` call it first thing). A user's own ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` always wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: Spin iterations before an idle OpenMP thread sleeps, for training with DataLoader workers.
SHORT_SPIN = "2000"
_USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_TRAIN_COMMANDS = ("train", "bench-train")

#: Why the process runs with the OpenMP waits it has (logged by the trainer).
decision: str = "libgomp's default spin (no DataLoader workers, or not set by casnat)"


def _options(argv: Sequence[str], name: str) -> list[str]:
    """Every value of ``--name V`` or ``--name=V`` in ``argv``, in order."""
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
    return values


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name V`` or ``--name=V`` in ``argv`` (the last one), else None."""
    values = _options(argv, name)
    return values[-1] if values else None


def _config_workers(path: str) -> int:
    """``data.num_workers`` of an experiment YAML; 0 when it cannot be read (the command
    itself reports a bad config, with the file named)."""
    from casnat.config import ConfigError, load_config

    try:
        return int(load_config(path).data.num_workers)
    except (ConfigError, OSError, ValueError, TypeError):
        return 0


def configure_for_command(argv: Sequence[str]) -> str:
    """Set ``GOMP_SPINCOUNT`` for ``casnat train`` on CPU with DataLoader workers.

    ``argv`` is the command line after the program name (``["train", "--config", ...]``).
    Does nothing when torch is already imported (too late to matter), when the user set
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``, for other commands, for ``--device cuda``,
    and for a config without workers. Returns the decision (also kept in :data:`decision`).

    ``casnat bench-train`` gets the decision its configs' training runs would get, so its
    frames/s are the trainer's: the short spin when every ``--config`` has workers (or
    ``--num-workers`` > 0 overrides them all), the default when none has. One process has one
    spin, so configs that disagree keep the default and the decision says to time them in
    separate runs (the benchmark prints it in its header).
    """
    global decision
    if not argv or argv[0] not in _TRAIN_COMMANDS:
        return decision
    user = [v for v in _USER_VARS if v in os.environ]
    if user:
        decision = "set by the user: " + ", ".join(f"{v}={os.environ[v]}" for v in user)
        return decision
    if "torch" in sys.modules:
        decision = "libgomp's default spin (torch was imported before casnat could set it)"
        return decision
    device = _option(argv, "--device") or ""
    configs = _options(argv, "--config")
    if argv[0] != "bench-train":
        configs = configs[-1:]  # train: the last --config wins, as argparse takes it
    if device.startswith("cuda") or not configs:
        return decision
    override = _option(argv, "--num-workers") if argv[0] == "bench-train" else None
    try:
        counts = [int(override)] * len(configs) if override is not None else None
    except ValueError:
        counts = None
    if counts is None:
        counts = [_config_workers(c) for c in configs]
    if len({n > 0 for n in counts}) > 1:
        decision = ("libgomp's default spin: the configs disagree on DataLoader workers "
                    f"({', '.join(f'{c}: {n}' for c, n in zip(configs, counts))}); training "
                    "gives the ones with workers GOMP_SPINCOUNT=" + SHORT_SPIN + ", so time "
                    "them in separate runs to see the trainer's frames/s")
        return decision
    workers = max(counts)
    if workers <= 0:
        return decision
    os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN
    decision = (f"GOMP_SPINCOUNT={SHORT_SPIN}: data.num_workers={workers} share the cores with "
                "the step's OpenMP threads (casnat.openmp)")
    return decision


__all__ = ["SHORT_SPIN", "configure_for_command", "decision"]
