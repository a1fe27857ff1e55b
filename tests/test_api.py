"""The Python API: seqtag.train on datasets objects and lists, Tagger.evaluate, callbacks, TensorBoard.

Every run trains the same small model for two epochs on corpora/sample_ner, so runs on the same
sentences with the same seed reach the same dev F1 whatever form the data came in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import seqtag
from seqtag.callbacks import Callback
from seqtag.cli import main
from seqtag.errors import ConfigError, DataError
from seqtag.readers import read_conll

from .conftest import SAMPLES, SMALL

CONFIG: dict[str, Any] = {**SMALL, "training": {**SMALL["training"], "max_epochs": 2}}
SPLITS = ("train", "dev", "test")


def _sentences(split: str) -> list[tuple[list[str], list[str]]]:
    return [(s.tokens, s.tags) for s in read_conll(SAMPLES / "sample_ner" / f"{split}.conll", tag_column=-1)]


@pytest.fixture(scope="module")
def dataset_dict() -> Any:
    """corpora/sample_ner as a DatasetDict: IOB2 tags as Sequence(ClassLabel) ids in ``ner_tags``."""
    import datasets

    pairs = {split: _sentences(split) for split in SPLITS}
    names = sorted({t for sents in pairs.values() for _, tags in sents for t in tags})
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    return datasets.DatasetDict({
        ("validation" if split == "dev" else split): datasets.Dataset.from_dict(
            {"tokens": [t for t, _ in sents], "ner_tags": [[names.index(g) for g in tags] for _, tags in sents]},
            features=features)
        for split, sents in pairs.items()})


@pytest.fixture(scope="module")
def trained(dataset_dict: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list, Path]:
    """A tagger trained through seqtag.train on the DatasetDict, the epochs its callback saw, and its folder."""
    out = tmp_path_factory.mktemp("api") / "ner"
    seen: list[tuple[int, dict]] = []
    tagger = seqtag.train(CONFIG, train=dataset_dict, output=out, progress=False, log=None,
                          callbacks=[lambda epoch, scores: seen.append((epoch, dict(scores)))])
    return tagger, seen, out


def _write_conll(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        blocks = ["\n".join(f"{tok} {tag}" for tok, tag in zip(tokens, tags)) for tokens, tags in _sentences(split)]
        (folder / f"{split}.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return folder


def test_datasetdict_trains_as_the_cli_does_on_the_same_files(trained: tuple, tmp_path: Path) -> None:
    tagger, _, out = trained
    # the IOB2 data was converted to the default BIOES training scheme: a dev F1 far from 0
    assert tagger.scheme == "BIOES" and tagger.summary["dev"] > 30
    assert tagger.scores["dev"]["f1"] == pytest.approx(tagger.summary["dev"], abs=1e-3)
    assert "test" in tagger.summary and tagger.summary["epochs"] == 2
    meta = json.loads((out / "meta.json").read_text())
    assert meta["data"]["corpus"] == "<DatasetDict>" and meta["data"]["scheme"] == "IOB2"
    config = tmp_path / "small.json"
    config.write_text(json.dumps(CONFIG))
    data = _write_conll(tmp_path / "conll")
    res = CliRunner().invoke(main, ["train", "--dataset", str(data), "--config", str(config), "-o",
                                    str(tmp_path / "cli"), "--no-progress"])
    assert res.exit_code == 0, res.output
    cli_meta = json.loads((tmp_path / "cli" / "meta.json").read_text())
    assert cli_meta["scores"]["dev"]["f1"] == pytest.approx(tagger.summary["dev"], abs=0.01)
    assert cli_meta["scores"]["test"]["f1"] == pytest.approx(tagger.scores["test"]["f1"], abs=0.01)


def test_evaluate_on_a_dataset_equals_seqtag_evaluate_on_the_file(trained: tuple, dataset_dict: Any,
                                                                  tmp_path: Path) -> None:
    tagger, _, out = trained
    data = _write_conll(tmp_path / "conll")
    res = CliRunner().invoke(main, ["evaluate", str(out), "--dataset", str(data / "test.conll"), "--json"])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.output)
    for got in (tagger.evaluate(dataset_dict["test"]), tagger.evaluate(dataset_dict, split="test")):
        assert got["f1"] == pytest.approx(cli["f1"]) and got["strict"] == cli["strict"]
        assert got["per_type"] == cli["per_type"] and got["sentences"] == cli["sentences"]
    assert tagger.evaluate(_sentences("test"))["f1"] == pytest.approx(cli["f1"])  # (tokens, tags) pairs
    with pytest.raises(DataError, match="trained on data given in memory"):
        tagger.evaluate()  # the DatasetDict was not saved: nothing to score on by default


def test_callbacks_hear_every_epoch_and_the_end(trained: tuple, dataset_dict: Any, tmp_path: Path) -> None:
    tagger, seen, _ = trained
    assert [e for e, _ in seen] == [1, 2]
    assert [s["dev"] for _, s in seen] == [h["dev"] for h in tagger.summary["history"]]
    assert {"loss", "dev", "scores", "lr", "improved", "best_dev", "seconds"} <= set(seen[0][1])

    class Tracker(Callback):
        def __init__(self) -> None:
            self.epochs: list[int] = []
            self.summary: Any = None

        def on_epoch_end(self, epoch: int, scores: Any) -> None:
            self.epochs.append(epoch)

        def on_train_end(self, summary: Any) -> None:
            self.summary = summary

    tracker = Tracker()
    seqtag.train(CONFIG, train=dataset_dict, output=tmp_path / "m", progress=False, log=None, callbacks=[tracker],
                 overrides=["training.max_epochs=3"])
    assert tracker.epochs == [1, 2, 3] and tracker.summary["epochs"] == 3


def test_lists_and_an_iterable_dataset_train_as_the_datasetdict(trained: tuple, dataset_dict: Any,
                                                                 tmp_path: Path) -> None:
    dev = trained[0].summary["dev"]
    lists = seqtag.train(CONFIG, train=_sentences("train"), dev=_sentences("dev"), test=_sentences("test"),
                         output=tmp_path / "lists", progress=False, log=None)
    assert lists.summary["dev"] == pytest.approx(dev, abs=0.01)
    stream = seqtag.train(CONFIG, train=dataset_dict["train"].to_iterable_dataset(),
                          dev=dataset_dict["validation"].to_iterable_dataset(), output=tmp_path / "stream",
                          progress=False, log=None)
    assert stream.summary["dev"] == pytest.approx(dev, abs=0.01) and "test" not in stream.summary


def test_output_folder_rules_are_the_clis(trained: tuple, dataset_dict: Any, tmp_path: Path) -> None:
    out = trained[2]
    with pytest.raises(ConfigError, match="holds a seqtag NER model.*--overwrite"):
        seqtag.train(CONFIG, train=dataset_dict, output=out, progress=False, log=None)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="a folder with other files"):
        seqtag.train(CONFIG, train=dataset_dict, output=mine, progress=False, log=None)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_tag_outside_the_scheme_is_one_line(tmp_path: Path) -> None:
    bad = _sentences("train")
    bad[2] = (bad[2][0], bad[2][1][:2] + ["PERSON"] + bad[2][1][3:])
    with pytest.raises(DataError) as info:
        seqtag.train(CONFIG, train=bad, output=tmp_path / "m", progress=False, log=None)
    line = info.value.one_line()  # rows are sentences: the row is named, not the row plus the token's place
    assert line.startswith("<list>[train]:3: tag 'PERSON' is outside the IOB/BIOES scheme") and "\n" not in line


def test_the_trainer_refuses_tags_invalid_in_the_training_scheme(tmp_path: Path) -> None:
    """IOB2 tags under the BIOES config trained silently to a dev F1 of 0; now they are refused."""
    from seqtag.config import build_config
    from seqtag.trainer import train

    cfg = build_config("ner", CONFIG)
    with pytest.raises(DataError, match=r"not valid BIOES, the scheme the model trains in; convert"):
        train(cfg, _sentences("train"), _sentences("dev"), tmp_path / "m", progress=False, log=lambda m: None)
    assert not (tmp_path / "m").exists()


def test_tensorboard_writes_event_files(dataset_dict: Any, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "m"
    seqtag.train(CONFIG, train=dataset_dict, output=out, progress=False, log=None, report_to="tensorboard")
    (run,) = (out / "runs").iterdir()
    assert list(run.glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert {"train/loss", "dev/f1", "train/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("dev/f1")] == [1, 2]


def test_tensorboard_missing_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it now fails
    res = CliRunner().invoke(main, ["train", "--dataset", str(SAMPLES / "sample_ner"), "--report-to", "tensorboard",
                                    "-o", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "needs the tensorboard package" in res.output and "[tensorboard]`" in res.output
    assert not (tmp_path / "m").exists()  # refused before anything was written


def test_import_seqtag_stays_cheap_and_train_stays_the_function() -> None:
    code = "import sys, seqtag; assert 'torch' not in sys.modules and 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import seqtag.trainer  # the training loop's module is not seqtag.train, which stays the function

    assert seqtag.train.__module__ == "seqtag.api" and seqtag.trainer.train is not seqtag.train
