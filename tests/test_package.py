"""The package imports without optional dependencies and exposes its decoding API."""

from __future__ import annotations

import subprocess
import sys


def test_import_without_torchaudio_k2_or_knf():
    code = (
        "import sys\n"
        "for name in ('torchaudio', 'k2', 'kaldi_native_fbank'):\n"
        "    sys.modules[name] = None  # makes 'import name' fail\n"
        "import casnat, casnat.align, casnat.models.asr, casnat.decode.runner, casnat.cli\n"
        "assert callable(casnat.load_model)\n"
        "print(casnat.align.backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("cpp", "numba")
