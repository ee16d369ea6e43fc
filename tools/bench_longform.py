"""Long-audio benchmark: peak RSS, RTF and WER of casnat.longform on recordings of N minutes.

Each recording joins test utterances (from a lhotse cuts manifest, repeated as needed) with
pauses, is written to a temporary wav, and is transcribed by :func:`casnat.longform.transcribe_long`
in a fresh subprocess, so that the peak RSS (``resource.getrusage``) is that length's alone. The
words are assigned back to the utterances by time and scored against the references and against
decoding the same utterances one by one; the starts of the words both decodings share (matched in
order) are compared with the one-by-one starts shifted by the utterance's offset (share within
100 ms).

    python tools/bench_longform.py --exp-dir egs/fsdd/exp/quick \
        --cuts egs/fsdd/data/manifests/cuts_test.jsonl.gz --root egs/fsdd --minutes 10 30 60
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _load_utts(cuts: Path, root: Path, limit: int) -> tuple[list[np.ndarray], list[str], int]:
    from lhotse import CutSet

    cwd = os.getcwd()
    os.chdir(root)  # manifests store sources relative to their recipe directory
    try:
        audio, texts, sr = [], [], None
        for cut in CutSet.from_file(cuts):
            if len(audio) >= limit:
                break
            x = cut.load_audio()
            audio.append(x.mean(axis=0).astype(np.float32))
            texts.append(" ".join(s.text for s in cut.supervisions))
            sr = cut.sampling_rate
    finally:
        os.chdir(cwd)
    return audio, texts, int(sr)


def add_noise(audio: list[np.ndarray], snr_db: float | None, seed: int = 1
              ) -> tuple[list[np.ndarray], float]:
    """White noise at ``snr_db`` under the utterances' mean power, added to each utterance;
    returns the noisy utterances and the noise's standard deviation (the pauses get the same
    noise, so the recording is one steady noise floor). ``None``: unchanged, and pauses of
    noise at 1e-3 (-60 dBFS)."""
    if snr_db is None:
        return audio, 1e-3
    rng = np.random.default_rng(seed)
    power = float(np.mean(np.concatenate(audio).astype(np.float64) ** 2))
    std = float(np.sqrt(power / 10 ** (snr_db / 10)))
    noisy = [np.clip(x + std * rng.standard_normal(len(x)), -1, 1).astype(np.float32)
             for x in audio]
    return noisy, std


def _build(audio: list[np.ndarray], sr: int, minutes: float, pause_s: float, path: Path,
           seed: int = 0, noise_std: float = 1e-3) -> list[tuple[int, float, float]]:
    """Write utterances (cycled) with pauses of ``pause_s`` +- 50% to ``path``; returns
    (utterance index, start, end) of each placement."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    placed, t, k = [], 0.0, 0
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as f:
        while t < minutes * 60:
            gap = np.float32(noise_std) * rng.standard_normal(
                int(pause_s * sr * rng.uniform(0.5, 1.5))).astype(np.float32)
            f.write(gap)
            t += len(gap) / sr
            i = k % len(audio)
            placed.append((i, t, t + len(audio[i]) / sr))
            f.write(audio[i])
            t += len(audio[i]) / sr
            k += 1
    return placed


def child(args: argparse.Namespace) -> None:
    """In a fresh process: transcribe one wav, print JSON (wall, RSS, words)."""
    import torch

    from casnat.decode.runner import DecodeOptions
    from casnat.inference import load_model
    from casnat.longform import LongformConfig, transcribe_long

    torch.set_num_threads(args.threads)
    rec = load_model(args.exp_dir, args.checkpoint, args.device)
    cfg = LongformConfig(max_segment_s=args.max_segment_s, min_segment_s=args.min_segment_s,
                         min_pause_s=args.min_pause_s, pause_keep_s=args.pause_keep_s,
                         sentence_pause_s=args.sentence_pause_s,
                         vad=args.vad, batch_size=args.batch_size)
    t0 = time.perf_counter()
    res = transcribe_long(rec, args.child, opts=DecodeOptions(mode=args.mode), cfg=cfg)
    wall = time.perf_counter() - t0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mib": rss_mib, "duration": res.duration,
                      "segments": len(res.segments),
                      "words": [[w.word, w.start] for w in res.words]}))


def _solo(args, audio: list[np.ndarray], sr: int) -> list[list[tuple[str, float]]]:
    """Each utterance decoded alone: its words with start times."""
    import torch

    from casnat.decode.runner import DecodeOptions
    from casnat.inference import load_model
    from casnat.words import pieces_to_words, token_pieces

    torch.set_num_threads(args.threads)
    rec = load_model(args.exp_dir, args.checkpoint, args.device)
    fs = rec.cfg.features.frame_shift * rec.model.encoder.subsampling_factor
    out = []
    for x in audio:
        h = rec.transcribe_features([rec.features(x, sr)], DecodeOptions(mode=args.mode))[0]
        ps = token_pieces(rec.tokenizer, h.tokens, h.token_starts, h.token_ends, h.confidences, fs)
        words = pieces_to_words(ps, word_tokens=rec.tokenizer.kind == "word")
        out.append([(w.word, w.start) for w in words])
    return out


def _score(placed, words, texts, solo) -> dict[str, float]:
    from casnat.decode.scoring import score_wer

    # Each word goes to the placement whose span, widened to the gaps' midpoints, holds its start.
    bounds = [(placed[j - 1][2] + s) / 2 if j else 0.0 for j, (_, s, _) in enumerate(placed)]
    got: list[list[tuple[str, float]]] = [[] for _ in placed]
    for w, start in words:
        j = int(np.searchsorted(bounds, start if start is not None else 0.0, side="right")) - 1
        got[max(j, 0)].append((w, start))
    refs = {f"{j:06d}": texts[i] for j, (i, _, _) in enumerate(placed)}
    solo_txt = {f"{j:06d}": " ".join(w for w, _ in solo[i]) for j, (i, _, _) in enumerate(placed)}
    hyp = {f"{j:06d}": " ".join(w for w, _ in g) for j, g in enumerate(got)}
    near = total = 0
    for j, (i, s, _) in enumerate(placed):
        # Starts of the words the two decodings share (matched in order, as an alignment would).
        a_words, b_words = [w for w, _ in got[j]], [w for w, _ in solo[i]]
        matcher = difflib.SequenceMatcher(None, a_words, b_words, autojunk=False)
        for blk in matcher.get_matching_blocks():
            for k in range(blk.size):
                a, b = got[j][blk.a + k][1], solo[i][blk.b + k][1]
                total += 1
                near += a is not None and b is not None and abs(a - (s + b)) <= 0.1
    return {"wer_ref": score_wer(refs, hyp).wer, "wer_solo_ref": score_wer(refs, solo_txt).wer,
            "wer_vs_solo": score_wer(solo_txt, hyp).wer,
            "start_within_100ms": near / max(total, 1)}


def main() -> None:
    from casnat.longform import LongformConfig

    d = LongformConfig()  # the library's defaults are the benchmark's
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exp-dir", required=True)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--cuts", type=Path, help="lhotse cuts manifest with the test utterances")
    ap.add_argument("--root", type=Path, default=Path("."), help="dir the manifest's paths are in")
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60])
    ap.add_argument("--max-utts", type=int, default=300)
    ap.add_argument("--pause-s", type=float, default=0.8)
    ap.add_argument("--snr", type=float, default=None,
                    help="add white noise at this SNR (dB) to utterances and pauses alike; the "
                    "one-by-one decoding gets the same noisy utterances")
    ap.add_argument("--mode", default="cassnat")
    ap.add_argument("--vad", default=d.vad, choices=["auto", "ctc", "energy", "both"])
    ap.add_argument("--max-segment-s", type=float, default=d.max_segment_s)
    ap.add_argument("--min-segment-s", type=float, default=d.min_segment_s)
    ap.add_argument("--min-pause-s", type=float, default=d.min_pause_s)
    ap.add_argument("--pause-keep-s", type=float, default=d.pause_keep_s)
    ap.add_argument("--sentence-pause-s", type=float, default=d.sentence_pause_s)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.cuts is None:
        ap.error("--cuts is required")
    if args.checkpoint is None:  # one checkpoint for every process, even while training goes on
        from casnat.inference import default_checkpoint

        args.checkpoint = str(default_checkpoint(Path(args.exp_dir)))
    audio, texts, sr = _load_utts(args.cuts, args.root, args.max_utts)
    audio, noise_std = add_noise(audio, args.snr)
    solo = _solo(args, audio, sr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"long_{minutes:g}min.wav"
            placed = _build(audio, sr, minutes, args.pause_s, wav, noise_std=noise_std)
            cmd = [sys.executable, __file__, *sys.argv[1:], "--checkpoint", args.checkpoint,
                   "--child", str(wav)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r.update(_score(placed, r.pop("words"), texts, solo), minutes=minutes,
                     utts=len(placed))
            rows.append(r)
            wav.unlink()
            print(f"done {minutes:g} min: {json.dumps(r)}", file=sys.stderr)
    print(f"checkpoint {args.checkpoint}")
    print(f"mode {args.mode}, vad {args.vad}, segments {args.min_segment_s:g}-"
          f"{args.max_segment_s:g} s, min pause {args.min_pause_s:g} s, pause kept "
          f"{args.pause_keep_s:g} s, sentence pause {args.sentence_pause_s:g} s, noise {'none' if args.snr is None else f'{args.snr:g} dB'}, "
          f"{args.threads} threads, device {args.device}")
    print("| minutes | utts | segments | peak RSS MiB | wall s | RTF | WER vs ref | "
          "one-by-one WER vs ref | WER vs one-by-one | starts within 100 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} | {r['utts']} | {r['segments']} | {r['rss_mib']:.0f} | "
              f"{r['wall']:.1f} | {r['wall'] / r['duration']:.4f} | {100 * r['wer_ref']:.2f}% | "
              f"{100 * r['wer_solo_ref']:.2f}% | {100 * r['wer_vs_solo']:.2f}% | "
              f"{100 * r['start_within_100ms']:.1f}% |")


if __name__ == "__main__":
    main()
