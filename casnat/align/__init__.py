"""casnat.align: CTC forced alignment, ESA alignment sampling and CASS-NAT segments.

``ctc_viterbi_align`` and ``sample_alignments`` run as compiled ops from ``casnat._C`` (C++/OpenMP,
CUDA) when built, numba kernels otherwise (:func:`backend` says which; ``CASNAT_ALIGN_BACKEND``
forces one). ``alignment_to_segments`` and ``token_runs`` (the
one collapse of a CTC path into token runs) are vectorized torch on any device.

>>> from casnat.align import ctc_viterbi_align, alignment_to_segments
"""

from __future__ import annotations

from casnat.align._backend import backend
from casnat.align.sampling import sample_alignments
from casnat.align.segments import Segments, TokenRuns, alignment_to_segments, token_runs
from casnat.align.viterbi import ctc_viterbi_align

__all__ = [
    "Segments",
    "TokenRuns",
    "alignment_to_segments",
    "backend",
    "ctc_viterbi_align",
    "sample_alignments",
    "token_runs",
]
