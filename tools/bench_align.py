"""Benchmark casnat's CTC Viterbi alignment against numba, a Python loop and torchaudio.

One run prints, for B = 32 and every (T, U, V) in {200, 800, 1600} x {20, 100, 300} x {500, 5000},
utterances per second and peak extra resident memory of:

* ``cpp``    torch.ops.casnat.ctc_viterbi_align (C++/OpenMP over the batch),
* ``numba``  the numba fallback (same algorithm, same results),
* ``pyloop`` a per-utterance Viterbi with a Python loop over frames and per-utterance
             backtracking (the research code's approach; timed on a few utterances),
* ``ta``     torchaudio.functional.forced_align, one utterance per call, when torchaudio imports
             here or in the venv given by ``--torchaudio-python`` (torchaudio needs torch 2.9.x);
             with ``--threads N`` a pool of N threads keeps N calls in flight (each runs on one
             core and releases the GIL), so torchaudio uses as many cores as the casnat ops.

It also counts the bytes the op must read (the 64-byte cache lines holding the log-probs of the
labels in the band of live states of every frame, plus the int64 path it writes) and reports the
cpp op's throughput as a fraction of that memory-traffic floor at the measured read bandwidth
(``%floor`` = floor bytes / bandwidth / cpp time). That bandwidth is sequential; scattered lines
come slower (page walks, adjacent-line fetches), so the table also times ``gather``: a numba
loop that reads just the blank and target log-probs of every frame, in the op's order, and only
adds them up (the op's reads without its work); ``gth/cpp`` near 1 means the op runs at the
speed of reading its inputs on this machine, and ``gth/ta`` (that loop's throughput over
torchaudio's) is about the most that any implementation which reads those values could gain over
torchaudio here. ``gen/cpp`` is the time of the op's general kernel over the op's (where the
op runs its AVX-512 register kernel, U <= 127: that kernel's speed-up; about 1 on CPUs without
AVX-512, where both are the general kernel). Rows with T < U have no valid path and are
skipped. Times are the fastest of at least ``--reps`` calls (the least disturbed on a shared
machine), cpp, numba, the general kernel, the gather loop and torchaudio called in alternation for
>= ``--min-seconds`` (2 s) so that all sample the same load;
memory is the rise of the resident-set high-water mark (VmHWM) during one call, after returning
freed heap to the OS. torchaudio runs in a worker process (in the venv given by
``--torchaudio-python``) that maps the same log-prob pages (a file in /dev/shm), so it reads the
same memory in the same cache state as the casnat ops; the path of utterance 0 of every
configuration is compared with casnat's (same tie rule, so they must be identical).

With ``--device cuda`` (on a GPU machine) the table instead compares the CUDA op with torchaudio's
CUDA forced_align (one utterance per call, the only batch size it takes) and with the cpp op on the
host's CPU with ``--threads`` threads; memory is the rise of torch's peak allocated GPU
memory, and ``%floor`` uses the GPU's measured read bandwidth.

Usage::

    nice python tools/bench_align.py [--threads 1] [--torchaudio-python /work/venv-ta/bin/python]
    python tools/bench_align.py --device cuda --threads 16
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from unittest import mock

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# Peak memory: reset the kernel's resident-set high-water mark, run, read it back (Linux only).


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Remote:
    """What a call returns when another process ran and timed the work (torchaudio's worker):
    its own time and peak extra resident memory replace the caller's, which would count the
    round trip and the wrong process."""

    seconds: float
    peak_mib: float


def _first_call(fn) -> tuple[float, float]:
    """Time of one call in seconds and the peak extra resident memory in MiB during it."""
    _malloc_trim()  # hand freed heap back to the OS so that reused buffers count again
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
    except OSError:
        base = -1
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    if isinstance(out, Remote):
        return out.seconds, out.peak_mib
    peak = (_status_kb("VmHWM") - base) / 1024 if base >= 0 else float("nan")
    return dt, peak


def measure(fn, reps: int) -> tuple[float, float]:
    """Fastest of ``reps`` calls in seconds (the least disturbed on a shared machine) and the peak
    extra resident memory in MiB during the first."""
    return measure_interleaved({"fn": fn}, reps, min_seconds=0.0)["fn"]


def measure_interleaved(
    fns: dict, reps: int, min_seconds: float = 0.3, max_rounds: int = 500
) -> dict[str, tuple[float, float]]:
    """Fastest call and first-call peak memory of each of ``fns``, timed in alternating rounds.

    On a shared machine a neighbour's load comes and goes within seconds; timing the
    implementations one after the other lets one of them draw a loaded stretch and the other a
    quiet one, which moved the cpp/numba ratio of the sub-millisecond rows between 1.8x and 4.1x
    from run to run. Each round calls every function once, so all of them sample the same
    stretches, and rounds go on until there are ``reps`` of them and ``min_seconds`` have passed
    (many rounds for fast rows).
    """
    best, peaks = {}, {}
    for name, fn in fns.items():
        best[name], peaks[name] = _first_call(fn)
    start, rounds = time.perf_counter(), 1
    while rounds < max_rounds and (rounds < reps or time.perf_counter() - start < min_seconds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            dt = out.seconds if isinstance(out, Remote) else time.perf_counter() - t0
            best[name] = min(best[name], dt)
        rounds += 1
    return {name: (best[name], peaks[name]) for name in fns}


@functools.cache
def _touch_kernel():
    """numba kernel that sums ``lp[b, t, cols[b, j]]`` over the band-free (t, j): the op's reads
    in the op's order with one addition each, parallel over the batch like the op."""
    import numba

    @numba.njit(parallel=True, fastmath=True, cache=False)  # fastmath: vectorized sum
    def touch(lp, cols):
        B, T, _ = lp.shape
        out = np.zeros(B, dtype=np.float32)
        for b in numba.prange(B):
            acc = np.float32(0.0)
            for t in range(T):
                for j in range(cols.shape[1]):
                    acc += lp[b, t, cols[b, j]]
            out[b] = acc
        return out

    return touch


def _gather_columns(lp: torch.Tensor, cols: torch.Tensor) -> None:
    """Read the blank and target columns of every frame of every utterance, nothing else."""
    from casnat.align import _numba

    _numba.sync_threads()
    _touch_kernel()(lp.numpy(), cols.numpy())


REGISTER_MAX_U = 127  # the C++ op's AVX-512 register kernel takes U <= 127 (ctc_align_cpu.cpp)


def _general_kernel(lp, il, tg, tl):
    """The C++ op with its register kernel switched off (read per call): the general kernel."""
    from casnat.align import ctc_viterbi_align

    with mock.patch.dict(os.environ, {"CASNAT_ALIGN_REGISTERS": "0"}):
        return ctc_viterbi_align(lp, il, tg, tl, impl="cpp")


# ---------------------------------------------------------------------------------------------
# Inputs (also generated, with the same code, inside the torchaudio venv).


def make_inputs(B, T, U, V, seed, device="cpu"):
    """Peaky random log-softmax ``(B, T, V)``, full lengths and uniform random targets."""
    g = torch.Generator(device=device).manual_seed(seed)
    lp = torch.randn(B, T, V, generator=g, device=device).mul_(3.0)
    lp -= torch.logsumexp(lp, dim=-1, keepdim=True)
    targets = torch.randint(1, V, (B, U), generator=g, device=device)
    full = functools.partial(torch.full, (B,), dtype=torch.long, device=device)
    return lp, full(T), targets, full(U)


def python_loop_viterbi(lp: torch.Tensor, target: torch.Tensor, blank: int = 0) -> list[int]:
    """Baseline: Viterbi of one utterance, Python loop over frames, torch ops over states.

    lp ``(T, V)``, target ``(U,)``. Same recursion and tie rule as casnat's kernels.
    """
    T, U = lp.size(0), target.numel()
    S = 2 * U + 1
    labels = torch.full((S,), blank, dtype=torch.long)
    labels[1::2] = target
    skip = torch.zeros(S, dtype=torch.bool)
    if U > 1:
        skip[3::2] = target[1:] != target[:-1]
    ninf = torch.tensor([-math.inf])
    alpha = torch.full((S,), -math.inf)
    alpha[:2] = lp[0, labels[:2]]
    bps = []
    for t in range(1, T):
        prev1 = torch.cat([ninf, alpha[:-1]])
        prev2 = torch.cat([ninf, ninf, alpha[:-2]]).masked_fill(~skip, -math.inf)
        cand = torch.stack([alpha, prev1, prev2])
        best = cand.max(0).values
        bps.append(torch.argmax((cand == best).to(torch.int8), 0))  # first max: stay > prev > skip
        alpha = best + lp[t, labels]
    s = S - 1 if S == 1 or alpha[S - 1] > alpha[S - 2] else S - 2
    s = 0 if S == 1 else s
    path = [0] * T
    for t in range(T - 1, 0, -1):
        path[t] = int(labels[s])
        s -= int(bps[t - 1][s])
    path[0] = int(labels[s])
    return path


def _python_loop_batch(lp: torch.Tensor, targets: torch.Tensor, n: int) -> None:
    for b in range(n):
        python_loop_viterbi(lp[b], targets[b])


# ---------------------------------------------------------------------------------------------
# Memory-traffic floor.


def traffic_floor_bytes(T: int, targets: torch.Tensor, V: int, blank: int = 0) -> int:
    """Bytes an ideal kernel must move for one batch: every 64-byte line holding a log-prob of a
    label live in frame t's band, read once, plus the int64 alignment written."""
    total = 0
    for tgt in targets:
        U = tgt.numel()
        S = 2 * U + 1
        t = torch.arange(T)
        lo = (S - 2 - 2 * (T - 1 - t)).clamp(min=0)
        hi = (2 * t + 1).clamp(max=S - 1)
        states = torch.arange(S)
        live = (states[None] >= lo[:, None]) & (states[None] <= hi[:, None])  # (T, S)
        labels = torch.full((S,), blank, dtype=torch.long)
        labels[1::2] = tgt
        byte = (t[:, None] * V + labels[None]) * 4  # rows are contiguous in (T, V)
        line = torch.where(live, byte // 64, -1)
        line = line.sort(dim=1).values
        distinct = (line[:, 1:] != line[:, :-1]) & (line[:, 1:] >= 0)
        total += int(distinct.sum() + (line[:, 0] >= 0).sum()) * 64
    return total + targets.size(0) * T * 8


def read_bandwidth() -> float:
    """Bytes per second that torch reads with the current thread count (sum of 512 MiB)."""
    x = torch.ones(128 * 1024 * 1024)
    x.sum()
    best = min(_time(lambda: x.sum()) for _ in range(3))
    return x.numel() * 4 / best


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# torchaudio, possibly in another venv.

TA_SCRIPT = """
import ctypes, json, sys, time
from concurrent.futures import ThreadPoolExecutor
import torch, torchaudio.functional as F
# forced_align takes one utterance and runs on one core; the op releases the GIL, so with N
# threads N calls are kept in flight: torchaudio gets the cores the casnat ops get.
workers = int(sys.argv[1])
torch.set_num_threads(1)
pool = ThreadPoolExecutor(workers) if workers > 1 else None
def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
reply("ready")
lp = tg = None
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd[0] == "inputs":  # ["inputs", file, B, T, U, V, n, targets]: the parent's own pages
        _, path, B, T, U, V, n, targets = cmd
        lp = torch.from_file(path, shared=True, size=B * T * V, dtype=torch.float32).view(B, T, V)
        tg = torch.tensor(targets, dtype=torch.int32)
        path0, _ = F.forced_align(lp[:1], tg[:1], blank=0)
        reply(path0[0].tolist())
    else:  # ["pass"]: align the n utterances once, one per call
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        open("/proc/self/clear_refs", "w").write("5")
        base = status_kb("VmRSS")
        one = lambda b: F.forced_align(lp[b:b + 1], tg[b:b + 1], blank=0)
        t0 = time.perf_counter()
        if pool is None:
            for b in range(n):
                one(b)
        else:
            list(pool.map(one, range(n)))
        reply([time.perf_counter() - t0, (status_kb("VmHWM") - base) / 1024])
"""


def shared_copy(x: torch.Tensor) -> tuple[torch.Tensor, str]:
    """``x`` copied into a file-backed shared mapping (in /dev/shm where it exists), and the
    file's name: the torchaudio worker maps the same pages, so every implementation reads the
    same memory, with the same cache and page-table state."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="casnat-bench-", suffix=".f32", dir=folder)
    os.close(fd)
    shared = torch.from_file(path, shared=True, size=x.numel(), dtype=x.dtype).view(x.shape)
    shared.copy_(x)
    return shared, path


class TorchaudioWorker:
    """torchaudio's forced_align in a long-lived process (its own venv when torchaudio does not
    load with this torch), so that its passes are timed in the same alternating rounds as the
    casnat ops: timed minutes apart, a neighbour's load had moved torchaudio's rate on one row
    between 971 and 1850 utt/s from run to run."""

    def __init__(self, python: str | None, threads: int) -> None:
        self.proc: subprocess.Popen | None = None
        if python is None:
            try:
                import torchaudio.functional  # noqa: F401
            except Exception:  # torchaudio does not load with this torch
                return
            python = sys.executable
        proc = subprocess.Popen(
            [python, "-c", TA_SCRIPT, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if proc.stdout is None or proc.stdout.readline().strip() != '"ready"':
            err = proc.stderr.read().strip().splitlines()[-1:] if proc.stderr else []
            print(f"# torchaudio not measured: {err}", file=sys.stderr)
            proc.kill()
            return
        self.proc = proc

    def _ask(self, cmd: list):
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("torchaudio worker died: " + (self.proc.stderr.read() or "")[-500:])
        return json.loads(line)

    def load(self, lp_file: str, lp: torch.Tensor, targets: torch.Tensor, n: int) -> list[int]:
        """Point the worker at the row's log-probs (``shared_copy``'s file) and targets; returns
        torchaudio's path of utterance 0."""
        B, T, V = lp.shape
        return self._ask(["inputs", lp_file, B, T, targets.size(1), V, n, targets.tolist()])

    def run_pass(self) -> Remote:
        """One pass over the row's n utterances, timed by the worker."""
        dt, peak = self._ask(["pass"])
        return Remote(dt, peak)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # the worker's loop ends at EOF
            self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------------
# GPU.


def _cuda_time(fn, reps: int) -> tuple[float, float]:
    """Fastest of ``reps`` calls in seconds (CUDA events) and the rise of peak allocated GPU
    memory in MiB during one call."""
    fn()  # warm-up
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    best = math.inf
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)
    return best, peak


def _cuda_read_bandwidth() -> float:
    """Bytes per second the GPU reads in a sum over 1 GiB."""
    x = torch.ones(256 * 1024 * 1024, device="cuda")
    t, _ = _cuda_time(x.sum, 5)
    return 256 * 1024 * 1024 * 4 / t


def _configs(args) -> list[tuple[int, int, int]]:
    """Every (T, U, V) of the table, V slowest."""
    return [(T, U, V) for V in args.V for T in args.T for U in args.U]


def main_cuda(args) -> None:
    from casnat.align import _backend, ctc_viterbi_align

    dev = torch.device("cuda")
    if not _backend.has_kernel("ctc_viterbi_align", dev):
        raise SystemExit("casnat._C has no CUDA kernels: build it where torch has CUDA")
    try:
        import torchaudio.functional as taF

        has_ta = hasattr(taF, "forced_align")
    except Exception:  # torchaudio absent or built for another torch
        has_ta = False
    B = args.batch
    bw = _cuda_read_bandwidth()
    print(
        f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, B={B}; GPU read bandwidth "
        f"{bw / 1e9:.0f} GB/s; cpp on the host CPU with {args.threads} threads; torchaudio "
        f"forced_align (CUDA, one utterance per call): {'yes' if has_ta else 'not measured'}"
    )
    head = (
        f"{'T':>5} {'U':>4} {'V':>5} | {'cuda utt/s':>10} {'MiB':>6} | {'ta utt/s':>9} "
        f"{'MiB':>6} | {'cpp utt/s':>9} | {'cu/ta':>6} {'cu/cpp':>6} | {'floor MB':>8} "
        f"{'%floor':>6}"
    )
    print(head)
    print("-" * len(head))
    agree: list[bool] = []
    for T, U, V in _configs(args):
        if T < U:
            print(f"{T:>5} {U:>4} {V:>5} | n/a: T < U, no path exists")
            continue
        lp, il, tg, tl = make_inputs(B, T, U, V, 0, device="cuda")
        run = functools.partial(ctc_viterbi_align, lp, il, tg, tl)
        cu_t, cu_mem = _cuda_time(run, args.reps)
        ali, _ = run()
        ta_ups, ta_mem = float("nan"), float("nan")
        if has_ta:
            n = min(B, args.ta_utts)
            tg32 = tg.int()

            def ta_run(n=n, lp=lp, tg32=tg32):
                for b in range(n):
                    taF.forced_align(lp[b : b + 1], tg32[b : b + 1], blank=0)

            ta_t, ta_mem = _cuda_time(ta_run, 2)
            ta_ups = n / ta_t
            path0, _ = taF.forced_align(lp[:1], tg32[:1], blank=0)
            agree.append(path0[0].tolist() == ali[0].tolist())
        lp_cpu, il_cpu, tg_cpu, tl_cpu = (x.cpu() for x in (lp, il, tg, tl))
        cpp_run = functools.partial(ctc_viterbi_align, lp_cpu, il_cpu, tg_cpu, tl_cpu, impl="cpp")
        cpp_run()
        cpp_t, _ = measure(cpp_run, 3)
        assert torch.equal(cpp_run()[0], ali.cpu()), "CUDA and cpp paths differ"
        floor = traffic_floor_bytes(T, tg_cpu, V)
        cu_ups = B / cu_t
        print(
            f"{T:>5} {U:>4} {V:>5} | {cu_ups:>10.0f} {cu_mem:>6.2f} | {ta_ups:>9.0f} "
            f"{ta_mem:>6.2f} | {B / cpp_t:>9.0f} | {cu_ups / ta_ups:>5.0f}x "
            f"{cpp_t / cu_t:>5.1f}x | "
            f"{floor / 1e6:>8.1f} {100 * (floor / bw) / cu_t:>5.1f}%",
            flush=True,
        )
        del lp, lp_cpu
    if agree:
        print(
            f"# torchaudio forced_align path == casnat path (utterance 0): "
            f"{sum(agree)}/{len(agree)} configurations"
        )


# ---------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch / OpenMP / numba threads (1: the 2-core dev machine is shared)",
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--T", type=int, nargs="+", default=[200, 800, 1600])
    p.add_argument("--U", type=int, nargs="+", default=[20, 100, 300])
    p.add_argument("--V", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="time each row's alternating rounds for at least this long: neighbours' load on "
        "this shared machine moved one op's rate by 40%% between back-to-back 0.3 s runs, and "
        "the fastest round of a longer run is the least disturbed",
    )
    p.add_argument(
        "--pyloop-utts", type=int, default=2, help="utterances timed for the Python loop"
    )
    p.add_argument(
        "--ta-utts",
        type=int,
        default=32,
        help="utterances timed for torchaudio (default: all of B = 32, so that its working set, "
        "cached or not, is the one the casnat ops see)",
    )
    p.add_argument(
        "--torchaudio-python",
        default=None,
        help="python of a venv with torch 2.9.1 + torchaudio 2.9.1",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: time the CUDA kernels against torchaudio's CUDA forced_align and the cpp op",
    )
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    if args.device == "cuda":
        main_cuda(args)
        return
    from casnat.align import _backend, ctc_viterbi_align

    B = args.batch
    configs = _configs(args)
    ta = TorchaudioWorker(args.torchaudio_python, args.threads)
    bw = read_bandwidth()
    print(
        f"# B={B}, threads={args.threads}, backend available: cpp={_backend.HAS_CPP}; "
        f"read bandwidth {bw / 1e9:.1f} GB/s; torchaudio: "
        f"{'yes, ' + str(args.threads) + ' call(s) in flight' if ta.proc else 'not measured'}"
    )
    head = (
        f"{'T':>5} {'U':>4} {'V':>5} | {'cpp utt/s':>10} {'MiB':>6} | {'numba utt/s':>11} "
        f"{'MiB':>6} | {'pyloop utt/s':>12} {'MiB':>6} | {'ta utt/s':>9} {'MiB':>6} | "
        f"{'cpp/py':>7} {'cpp/nb':>6} {'cpp/ta':>6} | {'floor MB':>8} {'%floor':>6} "
        f"{'gth/cpp':>7} {'gth/ta':>6} | {'gen/cpp':>7}"
    )
    print(head)
    print("-" * len(head))
    ta_agree: list[bool] = []
    for T, U, V in configs:
        if T < U:
            print(f"{T:>5} {U:>4} {V:>5} | n/a: T < U, no path exists")
            continue
        lp, il, tg, tl = make_inputs(B, T, U, V, 0)
        if ta.proc is not None:  # the worker maps these pages: every implementation reads them
            lp, lp_file = shared_copy(lp)
        runs = {
            impl: functools.partial(ctc_viterbi_align, lp, il, tg, tl, impl=impl)
            for impl in (["cpp", "numba"] if _backend.HAS_CPP else ["numba"])
        }
        if _backend.HAS_CPP and U <= REGISTER_MAX_U:
            runs["general"] = functools.partial(_general_kernel, lp, il, tg, tl)
        cols = torch.cat([torch.zeros(B, 1, dtype=torch.long), tg], dim=1)  # blank, targets
        runs["gather"] = functools.partial(_gather_columns, lp, cols)
        n_ta = min(B, args.ta_utts)
        ta_path0 = None
        if ta.proc is not None:
            try:
                ta_path0 = ta.load(lp_file, lp, tg, n_ta)
            finally:  # both sides have mapped it; the pages go with the last mapping
                os.unlink(lp_file)
            runs["ta"] = ta.run_pass
        for run in runs.values():
            run()  # warm-up (numba compiles on its first call)
        impls = measure_interleaved(runs, args.reps, min_seconds=args.min_seconds)
        n_py = min(B, args.pyloop_utts)
        ref, _ = ctc_viterbi_align(lp[:1], il[:1], tg[:1], tl[:1])
        assert python_loop_viterbi(lp[0], tg[0]) == ref[0].tolist(), "baseline disagrees"
        loop = functools.partial(_python_loop_batch, lp, tg, n_py)
        t_py, py_mem = measure(loop, 2)
        py_ups = n_py / t_py
        cpp_t, cpp_mem = impls.get("cpp", (float("nan"), float("nan")))
        nb_t, nb_mem = impls["numba"]
        cpp_ups, nb_ups = B / cpp_t, B / nb_t
        ta_ups, ta_mem = float("nan"), float("nan")
        if ta_path0 is not None:  # same inputs, same tie rule: the paths must be identical
            ta_ups, ta_mem = n_ta / impls["ta"][0], impls["ta"][1]
            ta_agree.append(ref[0].tolist() == ta_path0)
        floor = traffic_floor_bytes(T, tg, V)
        frac = (floor / bw) / cpp_t
        print(
            f"{T:>5} {U:>4} {V:>5} | {cpp_ups:>10.0f} {cpp_mem:>6.2f} | {nb_ups:>11.0f} "
            f"{nb_mem:>6.2f} | {py_ups:>12.1f} {py_mem:>6.2f} | {ta_ups:>9.0f} {ta_mem:>6.2f} | "
            f"{cpp_ups / py_ups:>6.0f}x {cpp_ups / nb_ups:>5.1f}x {cpp_ups / ta_ups:>5.1f}x | "
            f"{floor / 1e6:>8.1f} {100 * frac:>5.0f}% {impls['gather'][0] / cpp_t:>6.2f}x "
            f"{B / impls['gather'][0] / ta_ups:>5.1f}x | "
            + (f"{impls['general'][0] / cpp_t:>6.2f}x" if "general" in impls else f"{'-':>7}"),
            flush=True,
        )
        del lp, runs
    ta.close()
    if ta_agree:
        print(
            f"# torchaudio forced_align path == casnat path (utterance 0): "
            f"{sum(ta_agree)}/{len(ta_agree)} configurations"
        )


if __name__ == "__main__":
    main()
