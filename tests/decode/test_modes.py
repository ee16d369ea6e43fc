"""casnat.decode.modes: a mode registered in a test alone shows up in ``casnat decode
--list-modes`` (and the recipe-default list), ``--mode``, ``decode_batch`` and ``casnat
bench-decode`` (with its own profile phase); unknown modes and missing heads are errors naming
what exists; every search flag of decode, transcribe and bench-decode comes from DecodeOptions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from casnat.atomic import atomic_torch_save
from casnat.bin import bench_decode, decode, transcribe
from casnat.bin.search_args import flag_name, search_options
from casnat.cli import main
from casnat.config import ModelConfig, save_config
from casnat.data.tokenizer import Tokenizer
from casnat.decode.modes import (
    MODES,
    DecodeOptions,
    DecodingMode,
    check_mode,
    get_mode,
    recipe_default_modes,
    register_mode,
    supported_modes,
    unregister_mode,
)
from casnat.decode.results import Hypothesis
from casnat.decode.runner import decode_batch
from casnat.errors import UnsupportedModeError
from casnat.models.asr import ASRModel
from casnat.profiling import phase
from casnat.testing import tiny_config, tiny_parts

TOY = "toy_loudest"
BUILTIN = ("ctc_greedy", "ctc_prefix_beam", "at_beam", "joint_ctc_at", "attention_rescoring",
           "cassnat", "cassnat_esa")


def _loudest_token(model, enc_out, enc_lens, log_probs, opts) -> list[Hypothesis]:
    """Toy search: the one non-blank token with the most CTC posterior mass per utterance."""
    out = []
    with phase("toy phase"):
        for lp, n in zip(log_probs, enc_lens.tolist(), strict=True):
            mass = lp[:n].logsumexp(0)
            mass[model.blank_id] = float("-inf")
            out.append(Hypothesis(tokens=[int(mass.argmax())], score=float(mass.max())))
    return out


@pytest.fixture
def toy_mode():
    """A mode registered for one test only (a recipe default, needing no decoder head)."""
    mode = register_mode(DecodingMode(TOY, _loudest_token, "toy: loudest CTC token",
                                      recipe_default=True))
    try:
        yield mode
    finally:
        unregister_mode(TOY)


@pytest.fixture(scope="module")
def ctc_exp(tiny_fsdd, tmp_path_factory) -> tuple[Path, Path]:
    """A randomly initialized tiny CTC experiment (config.yaml, tokenizer/, epoch-1.pt) and the
    tiny FSDD test cuts (with features)."""
    exp = tmp_path_factory.mktemp("modes") / "exp"
    exp.mkdir()
    cfg = tiny_config(tiny_fsdd, "ctc")
    save_config(cfg, exp / "config.yaml")
    cuts = tiny_fsdd / "cuts_test.jsonl.gz"
    texts = [s.text for c in CutSet.from_file(cuts) for s in c.supervisions]
    tok = Tokenizer.train(texts, cfg.tokenizer, exp / "tokenizer")
    torch.manual_seed(0)
    model = ASRModel(cfg.model, tok.vocab_size, cfg.features.num_mel_bins)
    atomic_torch_save({"model": model.state_dict()}, exp / "epoch-1.pt")
    return exp, cuts


def test_builtin_modes_in_order():
    assert tuple(MODES) == BUILTIN and MODES == BUILTIN and len(MODES) == 7
    assert [m.name for m in recipe_default_modes()] == ["ctc_greedy", "at_beam", "joint_ctc_at",
                                                        "attention_rescoring", "cassnat",
                                                        "cassnat_esa"]


def test_toy_mode_in_list_modes_decode_and_bench(toy_mode, ctc_exp, tmp_path, capsys):
    exp, cuts = ctc_exp
    assert MODES[-1] == TOY and TOY in MODES
    assert main(["decode", "--exp-dir", str(exp), "--list-modes"]) == 0
    assert capsys.readouterr().out.split() == ["ctc_greedy", "ctc_prefix_beam", TOY]
    assert main(["decode", "--exp-dir", str(exp), "--list-modes", "--recipe-defaults"]) == 0
    assert capsys.readouterr().out.split() == ["ctc_greedy", TOY]

    # decode_batch hands the toy search the encoder's lengths and the CTC posteriors.
    from casnat.inference import load_model

    rec = load_model(exp)
    cut = next(iter(CutSet.from_file(cuts)))
    feats = torch.from_numpy(cut.load_features()).unsqueeze(0)
    lens = torch.tensor([feats.shape[1]])
    (hyp,) = decode_batch(rec.model, feats, lens, DecodeOptions(mode=TOY))
    with torch.no_grad():
        enc = rec.model.encode(feats, lens)
        mass = rec.model.ctc(enc.out)[0, : int(enc.lens[0])].logsumexp(0)
    mass[rec.model.blank_id] = float("-inf")
    assert hyp.tokens == [int(mass.argmax())]

    # The CLI's --mode choices are read when the parser is built: the toy mode decodes.
    out_dir = tmp_path / "dec"
    argv = ["decode", "--exp-dir", str(exp), "--cuts", str(cuts), "--out-dir", str(out_dir)]
    assert main([*argv, "--mode", TOY]) == 0
    assert json.loads((out_dir / "summary.json").read_text())["mode"] == TOY
    capsys.readouterr()

    # bench-decode's default modes are the recipe defaults: at_beam and the cassnat modes are
    # skipped on this CTC model, the toy mode is timed and its phase profiled.
    table_path = tmp_path / "bench.md"
    rc = main(["bench-decode", "--exp-dir", str(exp), "--cuts", str(cuts), "--max-utts", "3",
               "--profile", "--out", str(table_path)])
    assert rc == 0
    table = table_path.read_text()
    rows = [ln.split("|")[1].strip() for ln in table.splitlines() if ln.startswith("| ")]
    assert rows[1:3] == ["ctc_greedy", TOY]
    assert f"{TOY}: time per phase" in table and "| toy phase |" in table
    assert "| encoder |" in table and "| CTC head |" in table


def test_toy_mode_is_gone_after_unregistering():
    mode = register_mode(DecodingMode(TOY, _loudest_token, "toy"))
    with pytest.raises(ValueError, match="already registered"):
        register_mode(mode)
    unregister_mode(TOY)
    assert TOY not in MODES and MODES == BUILTIN
    with pytest.raises(UnsupportedModeError, match=TOY):
        get_mode(TOY)


def test_unknown_mode_names_the_known_ones(capsys):
    enc, _, _ = tiny_parts(d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8)
    model = ASRModel(ModelConfig(type="ctc", encoder=enc), vocab_size=8).eval()
    feats, lens = torch.randn(1, 20, 80), torch.tensor([20])
    for call in (lambda: get_mode("nope"), lambda: check_mode(model, "nope"),
                 lambda: decode_batch(model, feats, lens, DecodeOptions(mode="nope"))):
        with pytest.raises(UnsupportedModeError) as e:
            call()
        assert "'nope'" in str(e.value) and all(m in str(e.value) for m in BUILTIN)
    with pytest.raises(SystemExit):
        main(["decode", "--exp-dir", "x", "--mode", "nope"])
    err = capsys.readouterr().err
    assert "nope" in err and all(m in err for m in BUILTIN)


def test_a_mode_needing_a_head_is_checked_from_the_config_and_the_model():
    """A registered mode's ``needs`` decide supported_modes (saved config) and check_mode."""
    enc, _, nat = tiny_parts(d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8)
    register_mode(DecodingMode(TOY, _loudest_token, "toy", needs=("nat_decoder",)))
    try:
        ctc = ModelConfig(type="ctc", encoder=enc)
        cassnat = ModelConfig(type="cassnat", encoder=enc, nat_decoder=nat)
        assert TOY not in supported_modes(ctc) and TOY in supported_modes(cassnat)
        check_mode(ASRModel(cassnat, vocab_size=8), TOY)
        with pytest.raises(UnsupportedModeError, match="needs a CASS-NAT decoder"):
            check_mode(ASRModel(ctc, vocab_size=8), TOY)
    finally:
        unregister_mode(TOY)
    with pytest.raises(ValueError, match="unknown heads"):
        DecodingMode("x", _loudest_token, "x", needs=("lm",))  # type: ignore[arg-type]


def _parser(module) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p


@pytest.mark.parametrize("module", [decode, transcribe, bench_decode])
def test_search_flags_come_from_decode_options(module):
    """Every DecodeOptions field is a flag (bench-decode takes --modes instead of --mode), with
    the dataclass default; values given on the command line reach DecodeOptions."""
    p = _parser(module)
    base = ["--exp-dir", "e"] + (["--cuts", "c"] if module is bench_decode else [])
    defaults = p.parse_args(base)
    for f in dataclasses.fields(DecodeOptions):
        if module is bench_decode and f.name == "mode":
            assert not hasattr(defaults, "mode")
            continue
        assert getattr(defaults, f.name) == f.default, f.name
    assert search_options(defaults) == DecodeOptions()
    args = p.parse_args([*base, "--max-len-ratio", "0.25", "--ranker", "nat", "--seed", "5"])
    opts = search_options(args)
    assert (opts.max_len_ratio, opts.ranker, opts.seed) == (0.25, "nat", 5)
    with pytest.raises(SystemExit):
        p.parse_args([*base, "--ranker", "bogus"])  # Literal -> choices
    ranker_choices = typing.get_args(typing.get_type_hints(DecodeOptions)["ranker"])
    action = next(a for a in p._actions if a.dest == "ranker")
    assert tuple(action.choices) == ranker_choices and flag_name("ranker") in action.option_strings


def test_max_len_ratio_from_the_cli_bounds_at_beam():
    """--max-len-ratio reaches at_beam: a random AT model rarely ends on its own, so with a small
    ratio every hypothesis stops at ratio x encoder frames."""
    enc, at, _ = tiny_parts(d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8)
    torch.manual_seed(0)
    model = ASRModel(ModelConfig(type="at", encoder=enc, at_decoder=at), vocab_size=8).eval()
    feats, lens = torch.randn(2, 80, 80), torch.tensor([80, 60])
    args = _parser(decode).parse_args(["--exp-dir", "e", "--mode", "at_beam", "--beam", "2",
                                       "--max-len-ratio", "0.2"])
    with torch.no_grad():
        enc_lens = model.encode(feats, lens).lens
    bound = (enc_lens.float() * 0.2).long().clamp(min=1).tolist()
    short = decode_batch(model, feats, lens, search_options(args))
    assert all(len(h.tokens) <= b for h, b in zip(short, bound, strict=True))
    full = decode_batch(model, feats, lens, search_options(args, max_len_ratio=1.0))
    assert any(len(h.tokens) > b for h, b in zip(full, bound, strict=True))
