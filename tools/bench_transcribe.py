"""Throughput of ``casnat transcribe``: wall time, RTF and peak RSS per setting, as a table.

Each setting (``--num-workers`` x ``--batch-seconds``) runs ``casnat transcribe`` in a fresh
subprocess on the same inputs, so that peak RSS is that run's alone (the main process and, with
workers, the largest worker). The transcripts of every setting are compared with the first one's:
batching and workers must not change a word.

    python tools/bench_transcribe.py --exp-dir egs/fsdd/exp/cassnat \
        --inputs '/path/fsdd/recordings/*.wav' --workers 0 2 --batch-seconds 50 200
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RUNNER = """
import json, resource, sys, time
from casnat.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
wall = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "wall": wall, "rss_kib": own, "worker_rss_kib": kids}),
      file=sys.stderr)
"""


def run_one(
    model_args: list[str],
    inputs: list[str],
    workers: int,
    batch_s: float,
    out_dir: Path,
    extra: list[str],
) -> dict:
    argv = [
        "transcribe",
        *model_args,
        "--quiet",
        "--format",
        "jsonl",
        "--output-dir",
        str(out_dir),
        "--num-workers",
        str(workers),
        "--batch-seconds",
        str(batch_s),
        *extra,
        *inputs,
    ]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *argv], capture_output=True, text=True)
    total = time.perf_counter() - t
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    rows = [json.loads(ln) for ln in (out_dir / "transcripts.jsonl").read_text().splitlines()]
    audio = sum(r["duration"] or 0.0 for r in rows)
    return {
        **stats,
        "total": total,
        "files": len(rows),
        "audio_s": audio,
        "failed": sum(1 for r in rows if r["error"]),
        "texts": {r["id"]: r["text"] for r in rows},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--exp-dir")
    m.add_argument("--model")
    p.add_argument("--inputs", nargs="+", required=True, help="what casnat transcribe takes")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batch-seconds", type=float, nargs="+", default=[200.0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--mode", default="ctc_greedy")
    args = p.parse_args()
    model_args = ["--exp-dir", args.exp_dir] if args.exp_dir else ["--model", args.model]
    model_args += ["--device", args.device, "--num-threads", str(args.num_threads)]
    extra = ["--mode", args.mode]
    print(
        "| workers | batch s | files | failed | audio h | wall s | RTF | x real time "
        "| peak RSS MiB | worker RSS MiB | same text |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            for b in args.batch_seconds:
                r = run_one(model_args, args.inputs, w, b, Path(tmp) / f"w{w}_b{b}", extra)
                first = first or r["texts"]
                rtf = r["wall"] / max(r["audio_s"], 1e-9)
                print(
                    f"| {w} | {b:g} | {r['files']} | {r['failed']} | {r['audio_s'] / 3600:.3f} "
                    f"| {r['wall']:.1f} | {rtf:.4f} | {1 / max(rtf, 1e-9):.0f} "
                    f"| {r['rss_kib'] / 1024:.0f} | {r['worker_rss_kib'] / 1024:.0f} "
                    f"| {r['texts'] == first} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
