"""What ``casnat transcribe`` (and :meth:`casnat.inference.Recognizer.transcribe`) can read.

Every input becomes an :class:`AudioInput`: an id, the source as the user named it, and either a
lhotse cut (files, ``wav.scp`` lines, ``segments``, manifests) or an in-memory mono waveform. An
input that cannot be used carries ``error`` (one line naming it and the reason) instead of
raising, so one bad file never stops the rest of a batch.

Accepted, in any mix (:func:`resolve_inputs`):

* an audio file of any format and rate lhotse/soundfile read;
* a directory: every audio file below it (recursively, by :data:`AUDIO_EXTENSIONS`), sorted;
* a glob pattern (``'data/**/*.flac'``; quote it so that the shell does not expand it);
* ``-``: paths (or any of the above), one a line, on stdin;
* a Kaldi ``wav.scp`` (a file named ``wav.scp`` or ``*.scp``, or ``--wav-scp``): ``id path`` or
  ``id cmd |`` lines, a piped command read as lhotse does (``AudioSource(type="command")``: the
  command's stdout is an audio file), with an optional Kaldi ``segments`` file
  (``utt rec start end``; ``end`` -1 means to the end of the recording);
* a lhotse recording or cut manifest (``*.jsonl``, ``*.jsonl.gz``, ``*.json``).

Multi-channel audio is downmixed to mono by averaging the channels (what training does with
multi-channel cuts, :func:`casnat.data.features.load_audio_checked`): the models are mono.

Ids are unique: a file's id is its stem, or its path relative to the files' common directory
(without extension) when two files share a stem (:func:`casnat.output_formats.unique_ids`);
``wav.scp``/``segments``/manifest ids are kept; an id used twice gets ``-2``, ``-3``...
"""

from __future__ import annotations

import glob
import io
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from casnat.errors import UserError, one_line_reason
from casnat.output_formats import unique_ids

log = logging.getLogger(__name__)

#: Extensions a directory is searched for (lower case; matched case-insensitively).
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".opus",
    ".m4a",
    ".aac",
    ".wma",
    ".webm",
    ".sph",
    ".aif",
    ".aiff",
    ".au",
    ".caf",
)
MANIFEST_SUFFIXES: tuple[str, ...] = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
_GLOB_CHARS = set("*?[")


@dataclass
class AudioInput:
    """One thing to transcribe.

    ``cut`` (a lhotse cut) or ``samples`` + ``sample_rate`` (mono float32) hold the audio;
    ``error`` is set instead when the input cannot be used.
    """

    id: str
    source: str
    cut: Any = None
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds, when known (None for a failed input)."""
        if self.cut is not None:
            return float(self.cut.duration)
        if self.samples is not None and self.sample_rate:
            return len(self.samples) / self.sample_rate
        return None

    @property
    def file_path(self) -> Path | None:
        """The file when the input is a whole single-file recording (so that it can be streamed
        block by block, :func:`casnat.longform.audio_blocks`); None otherwise."""
        cut = self.cut
        rec = getattr(cut, "recording", None)
        if rec is None or len(rec.sources) != 1 or rec.sources[0].type != "file":
            return None
        if cut.start > 0 or abs(cut.duration - rec.duration) > 1e-3:
            return None
        return Path(rec.sources[0].source)

    def load_mono(self) -> tuple[np.ndarray, int]:
        """The waveform (mono float32, channels averaged) and its rate; UserError naming the
        input when it cannot be read."""
        if self.error:
            raise UserError(self.error)
        if self.samples is not None:
            return self.samples, int(self.sample_rate)
        from casnat.data.features import load_audio_checked

        try:
            return load_audio_checked(self.cut), int(self.cut.sampling_rate)
        except ValueError as e:
            raise UserError(f"{self.source}: {e}") from e


def downmix(samples: Any) -> np.ndarray:
    """``(T,)``, ``(T, C)`` or ``(C, T)`` (C < T) samples -> mono float32 by averaging channels.

    >>> downmix(np.array([[1.0, 3.0], [2.0, 4.0], [0.0, 0.0]])).tolist()
    [2.0, 3.0, 0.0]
    """
    try:
        import torch

        if isinstance(samples, torch.Tensor):
            samples = samples.detach().cpu().float().numpy()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = (x if x.shape[0] >= x.shape[1] else x.T).mean(axis=1)
    elif x.ndim != 1:
        raise UserError(f"a waveform must be (T,) or (T, C), got shape {tuple(x.shape)}")
    return np.ascontiguousarray(x)


def from_array(samples: Any, sample_rate: int, id: str, source: str | None = None) -> AudioInput:
    """An in-memory waveform (NumPy array or torch tensor) as an input; errors are recorded."""
    source = source or f"<array {id}>"
    try:
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise UserError(f"sample rate must be a positive int, got {sample_rate!r}")
        x = downmix(samples)
        if x.size == 0:
            raise UserError("empty audio")
        if not np.isfinite(x).all():
            raise UserError("non-finite samples")
    except UserError as e:
        return AudioInput(id, source, error=f"{source}: {e}")
    return AudioInput(id, source, samples=x, sample_rate=int(sample_rate))


# --- files ----------------------------------------------------------------------------------


def _file_cut(path: Path, id: str) -> AudioInput:
    from lhotse import Recording

    src = str(path)
    if path.is_dir():
        return AudioInput(id, src, error=f"{src}: is a directory with no audio files")
    if not path.is_file():
        return AudioInput(id, src, error=f"{src}: no such audio file")
    try:
        rec = Recording.from_file(path, recording_id=id)
    except Exception as e:  # noqa: BLE001 - the audio backends raise several types
        return AudioInput(id, src, error=f"{src}: unreadable audio ({one_line_reason(e)})")
    if rec.num_samples == 0:
        return AudioInput(id, src, error=f"{src}: empty audio")
    return AudioInput(id, src, cut=rec.to_cut())


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def audio_files_under(directory: Path) -> list[Path]:
    """Audio files below ``directory`` (recursive, sorted, hidden entries skipped)."""
    found = []
    for p in directory.rglob("*"):
        rel = p.relative_to(directory).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.is_file() and is_audio_file(p):
            found.append(p)
    return sorted(found)


def _is_manifest(path: Path) -> bool:
    return any(path.name.endswith(s) for s in MANIFEST_SUFFIXES)


def _is_scp(path: Path) -> bool:
    return path.name == "wav.scp" or path.suffix == ".scp"


# --- Kaldi ----------------------------------------------------------------------------------


def _command_recording(rec_id: str, cmd: str):
    """A lhotse Recording read from a piped command. The command runs once here for the
    recording's rate and length (lhotse needs them up front) and again when the audio is loaded:
    keeping its output instead would hold every input's audio in memory at once."""
    import soundfile as sf
    from lhotse import Recording
    from lhotse.audio import AudioSource

    proc = subprocess.run(cmd, shell=True, capture_output=True, check=False)
    if proc.returncode != 0:
        err = (proc.stderr.decode(errors="replace").strip().splitlines() or [""])[-1][:160]
        raise UserError(f"command failed (exit {proc.returncode}): {err}")
    if not proc.stdout:
        raise UserError("command wrote no audio")
    try:
        info = sf.info(io.BytesIO(proc.stdout))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"command output is not audio ({e})") from e
    if info.frames == 0:
        raise UserError("empty audio")
    return Recording(
        id=rec_id,
        sources=[AudioSource(type="command", channels=list(range(info.channels)), source=cmd)],
        sampling_rate=int(info.samplerate),
        num_samples=int(info.frames),
        duration=info.frames / info.samplerate,
    )


def read_wav_scp(scp: Path, segments: Path | None = None) -> list[AudioInput]:
    """Inputs of a Kaldi ``wav.scp`` (``id path`` / ``id cmd |``), cut by ``segments`` if given.

    A malformed line, missing file or failing command is an input with ``error`` naming
    ``scp:line``; a malformed ``segments`` file (user input the rest depends on) raises."""
    from lhotse import Recording

    if not scp.is_file():
        raise UserError(f"wav.scp not found: {scp}")
    recs: dict[str, tuple[str, Any, str | None]] = {}  # id -> (where, recording, error)
    order: list[str] = []
    for n, line in enumerate(scp.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{scp}:{n}"
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            rid = parts[0]
            recs[rid] = (where, None, f"{where}: expected 'id path' or 'id command |'")
            order.append(rid)
            continue
        rid, target = parts[0], parts[1].strip()
        if rid in recs:
            raise UserError(f"{where}: id {rid} repeated")
        order.append(rid)
        try:
            if target.endswith("|"):
                rec = _command_recording(rid, target[:-1].strip())
            else:
                got = _file_cut(Path(target), rid)
                if got.error:
                    raise UserError(got.error.split(": ", 1)[-1] + f" ({target})")
                rec = got.cut.recording
            recs[rid] = (where, rec, None)
        except UserError as e:
            recs[rid] = (where, None, f"{where} ({rid}): {e}")
        except Exception as e:  # noqa: BLE001 - lhotse raises several types
            recs[rid] = (where, None, f"{where} ({rid}): {e}")
    if segments is None:
        out = []
        for rid in order:
            where, rec, err = recs[rid]
            out.append(
                AudioInput(rid, where, error=err)
                if err
                else AudioInput(rid, where, cut=rec.to_cut())
            )
        return out
    if not segments.is_file():
        raise UserError(f"segments not found: {segments}")
    out = []
    for n, line in enumerate(segments.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{segments}:{n}"
        parts = line.split()
        try:
            utt, rid, start, end = parts[0], parts[1], float(parts[2]), float(parts[3])
            if len(parts) != 4:
                raise ValueError
        except (ValueError, IndexError):
            raise UserError(f"{where}: expected 'utt recording start end'") from None
        if rid not in recs:
            out.append(AudioInput(utt, where, error=f"{where}: recording {rid} not in {scp}"))
            continue
        _, rec, err = recs[rid]
        if err:
            out.append(AudioInput(utt, where, error=f"{where}: {err}"))
            continue
        rec: Recording
        end = rec.duration if end < 0 else min(end, rec.duration)
        if not 0 <= start < end:
            out.append(AudioInput(utt, where, error=f"{where}: empty segment {start}-{end} s"))
            continue
        cut = rec.to_cut().truncate(offset=start, duration=end - start, preserve_id=False)
        cut.id = utt
        out.append(AudioInput(utt, f"{rid}[{start:.2f}-{end:.2f}]", cut=cut))
    return out


# --- manifests ------------------------------------------------------------------------------


def read_manifest(path: Path) -> list[AudioInput]:
    """Inputs of a lhotse RecordingSet or CutSet manifest (ids from the manifest)."""
    from lhotse import CutSet, RecordingSet, load_manifest

    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    try:
        m = load_manifest(path)
    except Exception as e:  # noqa: BLE001 - lhotse raises several types
        raise UserError(f"{path}: not a lhotse manifest ({e})") from e
    if isinstance(m, RecordingSet):
        cuts = [r.to_cut() for r in m]
    elif isinstance(m, CutSet):
        cuts = list(m)
    else:
        raise UserError(f"{path}: a {type(m).__name__}, expected recordings or cuts")
    return [AudioInput(c.id, f"{path}:{c.id}", cut=c) for c in cuts]


# --- everything -----------------------------------------------------------------------------


def _expand(spec: str, stdin: TextIO | None) -> Iterable[tuple[str, Path | None]]:
    """``(kind, path)`` for one command-line input: kind ``file``, ``scp`` or ``manifest``, or
    ``error:<message>`` (path None) when a directory or pattern names no file."""
    if spec == "-":
        stream = stdin if stdin is not None else sys.stdin
        for line in stream:
            line = line.strip()
            if line and line != "-":
                yield from _expand(line, None)
        return
    path = Path(spec)
    if path.is_dir():
        files = audio_files_under(path)
        if not files:
            yield (
                f"error:{spec}: directory has no audio files "
                f"({', '.join(AUDIO_EXTENSIONS[:4])}, ...)",
                None,
            )
        for f in files:
            yield "file", f
        return
    if not path.exists() and _GLOB_CHARS & set(spec):
        matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
        matches = [m for m in matches if m.is_file()]
        if not matches:
            yield f"error:{spec}: no file matches this pattern", None
        for m in matches:
            yield ("scp" if _is_scp(m) else "manifest" if _is_manifest(m) else "file"), m
        return
    if _is_scp(path):
        yield "scp", path
    elif _is_manifest(path):
        yield "manifest", path
    else:
        yield "file", path


def resolve_inputs(
    specs: Sequence[str | Path] = (),
    *,
    wav_scp: str | Path | None = None,
    segments: str | Path | None = None,
    stdin: TextIO | None = None,
) -> list[AudioInput]:
    """Every input named by ``specs`` (files, directories, globs, ``-``, wav.scp, manifests) and
    ``wav_scp`` (+ ``segments``), in order, with unique ids. Failed inputs carry ``error``.

    Raises UserError only when nothing at all was named, or a list file (wav.scp, segments,
    manifest) itself is missing or malformed, since then no input can be trusted."""
    if segments is not None and wav_scp is None:
        raise UserError("--segments needs --wav-scp")
    entries: list[tuple[AudioInput | None, Path | None]] = []  # (input, path needing an id)
    for spec in specs:
        for kind, path in _expand(str(spec), stdin):
            if kind.startswith("error:"):
                msg = kind[len("error:") :]
                entries.append(
                    (AudioInput(msg.split(": ", 1)[0], msg.split(": ", 1)[0], error=msg), None)
                )
            elif kind == "scp":
                entries.extend((i, None) for i in read_wav_scp(path))
            elif kind == "manifest":
                entries.extend((i, None) for i in read_manifest(path))
            else:
                entries.append((None, path))
    if wav_scp is not None:
        seg = Path(segments) if segments is not None else None
        entries.extend((i, None) for i in read_wav_scp(Path(wav_scp), seg))
    if not entries:
        raise UserError(
            "no audio given (pass files, directories, globs, '-', wav.scp or a manifest)"
        )
    paths = [p for i, p in entries if i is None]
    ids = iter(unique_ids([str(p) for p in paths]))
    out = [i if i is not None else _file_cut(p, next(ids)) for i, p in entries]
    return dedupe_ids(out)


def dedupe_ids(inputs: list[AudioInput]) -> list[AudioInput]:
    """Give the second, third... use of an id the suffix ``-2``, ``-3``... (in place)."""
    counts = Counter(i.id for i in inputs)
    taken = set(counts)
    seen: Counter = Counter()
    for inp in inputs:
        if counts[inp.id] == 1:
            continue
        seen[inp.id] += 1
        if seen[inp.id] == 1:
            continue
        k, new = seen[inp.id], f"{inp.id}-{seen[inp.id]}"
        while new in taken:
            k += 1
            new = f"{inp.id}-{k}"
        taken.add(new)
        inp.id = new
    return inputs


def as_inputs(audio: Iterable[Any]) -> list[AudioInput]:
    """The Python API's inputs: paths (str/Path), ``(samples, sample_rate)`` pairs (NumPy or
    torch, mono or multi-channel), lhotse cuts/recordings, or :class:`AudioInput`.

    Files get ids as on the command line; a waveform is ``array<k>`` (its position)."""
    items = list(audio)
    out: list[AudioInput | None] = []
    paths: list[Path] = []
    for k, a in enumerate(items):
        if isinstance(a, AudioInput):
            out.append(a)
        elif isinstance(a, (str, Path)):
            out.append(None)
            paths.append(Path(a))
        elif isinstance(a, tuple) and len(a) == 2:
            out.append(from_array(a[0], a[1], f"array{k}"))
        elif hasattr(a, "to_cut") and hasattr(a, "sources"):  # a lhotse Recording
            out.append(AudioInput(a.id, a.id, cut=a.to_cut()))
        elif hasattr(a, "load_audio") and hasattr(a, "sampling_rate"):  # a lhotse Cut
            out.append(AudioInput(a.id, a.id, cut=a))
        else:
            raise TypeError(
                f"input {k}: expected a path, (samples, sample_rate), a lhotse cut or "
                f"recording, got {type(a).__name__}"
            )
    ids = iter(unique_ids([str(p) for p in paths]))
    path_iter = iter(paths)
    res = [i if i is not None else _file_cut(next(path_iter), next(ids)) for i in out]
    return dedupe_ids(res)


__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInput",
    "as_inputs",
    "audio_files_under",
    "dedupe_ids",
    "downmix",
    "from_array",
    "read_manifest",
    "read_wav_scp",
    "resolve_inputs",
]
