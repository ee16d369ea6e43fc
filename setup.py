"""Build and install casnat.

The compiled ops in ``csrc/`` become ``casnat._C``. The CUDA kernels are compiled only when the
installed torch was built with CUDA (``torch.version.cuda``) and nvcc is found; the build never
asks whether a GPU is present, because build machines often have none. ``CASNAT_BUILD_EXT=0``
skips the extension (casnat then runs its numba kernels).

Install with ``pip install --no-build-isolation -e .`` so the build uses the torch you already
have instead of pulling a fresh (CUDA, multi-GB) one into an isolated build environment.
"""

from __future__ import annotations

import glob
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(path: str) -> str:
    """The file's text, or "" when absent (an sdist without the README still builds)."""
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


def _ext_modules() -> tuple[list, dict]:
    if os.environ.get("CASNAT_BUILD_EXT", "1") == "0":
        return [], {}
    sources = sorted(
        glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp"))
    )
    if not sources:
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    # No -std flag: torch adds the standard its own headers need (C++17 or C++20 by version).
    cxx_flags = ["-O3", "-fopenmp"]
    define_macros = [("Py_LIMITED_API", "0x03090000")]
    cuda_sources = sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    use_cuda = (
        torch.version.cuda is not None
        and CUDA_HOME is not None
        and bool(cuda_sources)
        and os.environ.get("CASNAT_BUILD_CUDA", "1") != "0"
    )
    if use_cuda:
        ext = CUDAExtension(
            "casnat._C",
            sources + cuda_sources,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math"]},
            extra_link_args=["-fopenmp"],
            define_macros=define_macros + [("CASNAT_WITH_CUDA", None)],
            py_limited_api=True,
        )
    else:
        ext = CppExtension(
            "casnat._C",
            sources,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
            define_macros=define_macros,
            py_limited_api=True,
        )
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = _ext_modules()

setup(
    name="casnat",
    version="0.1.0",
    description="CASS-NAT: CTC alignment-based single-step non-autoregressive speech recognition",
    long_description=_read(os.path.join(HERE, "README.md")),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["casnat", "casnat.*"]),
    install_requires=[
        "torch>=2.4",
        "lhotse>=1.20",
        "lilcom>=1.7",  # lhotse's compressed feature storage
        "sentencepiece>=0.2",
        "numba>=0.59",
        "jiwer>=3.0",
        "soundfile>=0.12",
        "scipy>=1.10",
        "urllib3",
        "pyyaml>=6.0",
        "tensorboard>=2.14",
        "tqdm",
    ],
    extras_require={
        # One-file models (casnat export-model / transcribe --model): safetensors weights.
        "model-file": ["safetensors>=0.4"],
        # casnat export-onnx / casnat.onnx_export.OnnxRecognizer (ctc_greedy, cassnat).
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        # The ONNX tests run in CI too (they skip, saying so, where the extra is absent).
        "dev": ["pytest>=8", "ruff>=0.5", "hypothesis>=6", "safetensors>=0.4", "onnx>=1.15",
                "onnxruntime>=1.17"],
        "fbank": ["kaldi-native-fbank>=1.19"],
    },
    entry_points={"console_scripts": ["casnat=casnat.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
