"""Build lhotse cut manifests for a corpus: fsdd, synth_en, kaldi (a Kaldi data dir), librispeech.

Writes OUT_DIR/cuts_{split}.jsonl.gz; the recipes' stage 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    ps = p.add_subparsers(dest="corpus", required=True)
    f = ps.add_parser("fsdd", help="connected digits from the Free Spoken Digit Dataset")
    f.add_argument("corpus_dir", type=Path, help="FSDD root (with recordings/)")
    f.add_argument("out_dir", type=Path)
    f.add_argument("--num-train", type=int, default=3000)
    f.add_argument("--num-dev", type=int, default=300)
    f.add_argument("--num-test", type=int, default=300)
    f.add_argument("--seed", type=int, default=0)
    s = ps.add_parser(
        "synth_en", help="multi-voice read speech synthesized with Debian TTS engines"
    )
    s.add_argument(
        "text", type=Path, help="dir with sentences_{train,dev,test}.txt, or one text file"
    )
    s.add_argument("out_dir", type=Path)
    s.add_argument(
        "--num-train", type=int, default=0, help="train sentences (0: all that survive the filter)"
    )
    s.add_argument("--num-dev", type=int, default=100)
    s.add_argument("--num-test", type=int, default=200)
    s.add_argument(
        "--vocab-size",
        type=int,
        default=1000,
        help="closed vocabulary: keep sentences of the N most frequent train words (0: open)",
    )
    s.add_argument(
        "--max-words", type=int, default=12, help="longest sentence kept, in words (0: any)"
    )
    s.add_argument(
        "--voices-per-sentence",
        type=int,
        default=2,
        help="distinct train voices speaking each train sentence",
    )
    s.add_argument("--num-jobs", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    k = ps.add_parser("kaldi", help="a Kaldi data dir (wav.scp, text, [segments], [utt2spk])")
    k.add_argument("data_dir", type=Path)
    k.add_argument("out_dir", type=Path)
    k.add_argument("--name", default=None, help="split name (default: the data dir's name)")
    ls = ps.add_parser("librispeech", help="LibriSpeech, through lhotse's recipe")
    ls.add_argument("corpus_dir", type=Path, help="the LibriSpeech/ directory")
    ls.add_argument("out_dir", type=Path)
    ls.add_argument("--parts", default="auto", help="comma-separated parts (default: all present)")
    ls.add_argument("--num-jobs", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    if args.corpus == "fsdd":
        from casnat.data.corpora.fsdd import prepare_fsdd

        out = prepare_fsdd(
            args.corpus_dir,
            args.out_dir,
            num_train=args.num_train,
            num_dev=args.num_dev,
            num_test=args.num_test,
            seed=args.seed,
        )
    elif args.corpus == "synth_en":
        from casnat.data.corpora.synth_en import prepare_synth_en

        out = prepare_synth_en(
            args.text,
            args.out_dir,
            num_train=args.num_train,
            num_dev=args.num_dev,
            num_test=args.num_test,
            num_jobs=args.num_jobs,
            seed=args.seed,
            vocab_size=args.vocab_size,
            max_words=args.max_words,
            voices_per_sentence=args.voices_per_sentence,
        )
    elif args.corpus == "kaldi":
        from casnat.data.kaldi_dir import write_kaldi_dir_cuts

        name = args.name or args.data_dir.name
        out = {name: write_kaldi_dir_cuts(args.data_dir, args.out_dir / f"cuts_{name}.jsonl.gz")}
    else:
        from casnat.data.corpora.librispeech import prepare_librispeech

        out = prepare_librispeech(
            args.corpus_dir, args.out_dir, parts=args.parts, num_jobs=args.num_jobs
        )
    for split, path in out.items():
        print(f"{split}: {path}")
    return 0
