"""The package imports without optional dependencies and exposes its decoding API."""

from __future__ import annotations

import subprocess
import sys

from casnat.testing import REPO_ROOT


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


def _quickstart_commands() -> list[str]:
    """The command lines of the README's quickstart block (comments and blank lines dropped)."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_quickstart_is_two_commands_and_ci_runs_its_test_command():
    """The README promises two set-up commands, the second of which is what CI runs."""
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    recipe, tests = commands
    assert "egs/fsdd/run.sh" in recipe and "tools/install.sh" in recipe  # real speech first
    install, test_cmd = (part.strip() for part in tests.split("&&")[-2:])
    assert install == "bash tools/install.sh --dev"
    ci = [ln.strip() for ln in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci and test_cmd in ci, (install, test_cmd)
    assert ci.index(install) < ci.index(test_cmd)
