"""``casnat features``: the front end comes from the experiment config when one is given."""

from pathlib import Path

import yaml
from lhotse import CutSet

from casnat.cli import main
from casnat.data.features import FEATURES_RECORD_KEY
from casnat.testing import make_tone_cuts


def _cuts(tmp_path: Path) -> Path:
    path = tmp_path / "cuts_x.jsonl.gz"
    make_tone_cuts(tmp_path).to_file(path)
    return path


def test_config_sets_the_front_end(tmp_path: Path) -> None:
    conf = tmp_path / "x.yaml"
    conf.write_text(yaml.safe_dump({"features": {"sample_rate": 8000, "num_mel_bins": 40,
                                                 "level_dbfs": -25.0}}))
    rc = main(["features", "--config", str(conf), "--cuts", str(_cuts(tmp_path)),
               "--out-dir", str(tmp_path / "fbank"), "--num-jobs", "1"])
    assert rc == 0
    cuts = CutSet.from_file(tmp_path / "fbank" / "cuts_x.jsonl.gz")
    for c in cuts:
        assert c.sampling_rate == 8000 and c.features.num_features == 40
        assert c.load_features().shape[1] == 40
        rec = c.custom[FEATURES_RECORD_KEY]
        assert rec["sample_rate"] == 8000 and rec["level_dbfs"] == -25.0


def test_without_config_the_defaults(tmp_path: Path) -> None:
    assert main(["features", "--cuts", str(_cuts(tmp_path)), "--out-dir",
                 str(tmp_path / "fbank"), "--num-jobs", "1"]) == 0
    c = CutSet.from_file(tmp_path / "fbank" / "cuts_x.jsonl.gz")[0]
    assert c.sampling_rate == 16000 and c.features.num_features == 80
    assert c.custom[FEATURES_RECORD_KEY]["level_dbfs"] is None


def test_bad_config_is_one_line_error(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text("features:\n  level_dbfs: 3\n")
    rc = main(["features", "--config", str(conf), "--cuts", str(_cuts(tmp_path)), "--out-dir",
               str(tmp_path / "fbank")])
    assert rc == 2
    assert "level_dbfs" in capsys.readouterr().err
