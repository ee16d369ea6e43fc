"""Memory and start-up of the training sampler on a large manifest: eager vs lazy (issue 13).

Writes a synthetic manifest of ``--num-cuts`` feature cuts (one real FSDD-like cut as the template,
with varied ids and durations; no audio or feature files are needed: the sampler only reads the
manifest), then, each in a fresh process so peak RSS is its own, opens it the way casnat's training
loader does (``casnat.data.loader.open_cuts``), eagerly (``CutSet.from_file(...).to_eager()``:
every cut an object in memory) and lazily
(``CutSet.from_jsonl_lazy``), builds the ``DynamicBucketingSampler`` the trainer uses and draws
``--batches`` batches. Prints a Markdown table: open time, time to the first batch, batches/s and
peak RSS per way of opening, and the RSS of the interpreter with casnat imported (the floor).

    python tools/bench_manifest.py --num-cuts 1000000 --workdir /tmp/bench_manifest
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

TEMPLATE = {
    "id": "",
    "start": 0.0,
    "duration": 0.0,
    "channel": 0,
    "supervisions": [
        {"id": "", "recording_id": "", "start": 0.0, "duration": 0.0, "channel": 0,
         "text": "nine zero three one six", "language": "English", "speaker": "george"}
    ],
    "features": {
        "type": "kaldi-fbank", "num_frames": 0, "num_features": 80, "frame_shift": 0.01,
        "sampling_rate": 16000, "start": 0.0, "duration": 0.0, "storage_type": "lilcom_chunky",
        "storage_path": "data/fbank/feats_cuts_train_0.lca", "storage_key": "0,33649",
        "recording_id": "", "channels": 0,
    },
    "recording": {
        "id": "", "sources": [{"type": "file", "channels": [0], "source": "wavs/x.flac"}],
        "sampling_rate": 16000, "num_samples": 0, "duration": 0.0, "channel_ids": [0],
    },
    "type": "MonoCut",
}

WAYS = ("floor", "casnat", "eager", "lazy")


def write_manifest(path: Path, num_cuts: int, seed: int = 0) -> None:
    """``num_cuts`` cuts of 1-15 s, gzip JSONL, as lhotse writes them."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1) as f:
        for i in range(num_cuts):
            d = round(rng.uniform(1.0, 15.0), 2)
            cid = f"synth_{i:08d}"
            c = json.loads(json.dumps(TEMPLATE))
            c["id"] = c["supervisions"][0]["id"] = c["supervisions"][0]["recording_id"] = cid
            c["features"]["recording_id"] = c["recording"]["id"] = cid
            c["duration"] = c["supervisions"][0]["duration"] = c["features"]["duration"] = d
            c["recording"]["duration"] = d
            c["features"]["num_frames"] = int(round(d * 100))
            c["recording"]["num_samples"] = int(round(d * 16000))
            f.write(json.dumps(c) + "\n")
    tmp.replace(path)


def child(way: str, path: Path, batches: int) -> dict[str, float]:
    """Run in a fresh process: open, sample, report seconds and peak RSS (MiB)."""
    from lhotse import CutSet
    from lhotse.dataset import DynamicBucketingSampler

    import casnat.data.loader as loader

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    if way == "floor":
        out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out
    if way == "casnat":
        opener = getattr(loader, "open_cuts", None) or loader._as_cutset
        cuts = opener(path)
    elif way == "eager":
        cuts = CutSet.from_file(path).to_eager()  # from_file itself is lazy for JSONL
    else:
        cuts = CutSet.from_jsonl_lazy(path)
    out["open_s"] = time.perf_counter() - t0
    sampler = DynamicBucketingSampler(cuts, max_duration=200.0, num_buckets=10, shuffle=True,
                                      seed=0)
    sampler.set_epoch(0)
    it = iter(sampler)
    next(it)
    out["first_batch_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for _ in range(batches):
        next(it)
        n += 1
    out["batches_per_s"] = n / max(time.perf_counter() - t1, 1e-9)
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-cuts", type=int, default=1_000_000)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/casnat_bench_manifest"))
    p.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    p.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    p.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.manifest, args.batches)))
        return 0
    path = args.workdir / f"cuts_{args.num_cuts}.jsonl.gz"
    if not path.is_file():
        t0 = time.perf_counter()
        write_manifest(path, args.num_cuts)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows = []
    for way in args.ways:
        res = subprocess.run(
            [sys.executable, __file__, "--child", way, "--manifest", str(path),
             "--batches", str(args.batches)], capture_output=True, text=True, check=True)
        rows.append((way, json.loads(res.stdout.strip().splitlines()[-1])))
    print(f"{args.num_cuts} cuts ({path.stat().st_size / 2**20:.0f} MiB gzip), "
          f"DynamicBucketingSampler(max_duration=200, num_buckets=10, shuffle), "
          f"{args.batches} batches after the first\n")
    print("| way | open s | first batch s | batches/s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for way, r in rows:
        cells = [format(r[k], fmt) if k in r else "-" for k, fmt in
                 (("open_s", ".1f"), ("first_batch_s", ".1f"), ("batches_per_s", ".0f"),
                  ("rss_mib", ".0f"))]
        print(f"| {way} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
