#!/usr/bin/env python
"""Split a synth_en test manifest into utterances of voices seen in training and of held-out voices.

    python local/split_by_voice.py data/fbank/cuts_test.jsonl.gz
    -> data/fbank/cuts_test_seen.jsonl.gz, data/fbank/cuts_test_unseen.jsonl.gz

The preparer marks held-out-voice cuts with ``custom["unseen_voice"]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lhotse import CutSet


def _unseen(cut) -> bool:  # a named function, not a lambda: lhotse warns lambdas block forking
    return bool((cut.custom or {}).get("unseen_voice"))


def _seen(cut) -> bool:
    return not _unseen(cut)


def main(path: str) -> None:
    src = Path(path)
    cuts = CutSet.from_file(src)
    stem = src.name.removesuffix(".jsonl.gz")
    unseen = cuts.filter(_unseen)
    seen = cuts.filter(_seen)
    for name, part in (("seen", seen), ("unseen", unseen)):
        out = src.with_name(f"{stem}_{name}.jsonl.gz")
        part.to_eager().to_file(out)
        print(f"{out}: {len(part.to_eager())} cuts")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} <cuts_test.jsonl.gz>")
    main(sys.argv[1])
