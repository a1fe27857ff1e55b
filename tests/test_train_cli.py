"""Training, evaluation and prediction through the CLI and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqtag
from seqtag.cli import main
from seqtag.data import load_corpus

from .conftest import SAMPLES, corpora_dir, train_small


def test_small_ner_model_fits_the_sample_corpus(ner_model: Path) -> None:
    tagger = seqtag.load(ner_model)
    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    gold = corpus.sentences("train", "IOB2")[:40]
    preds = tagger.predict([t for t, _ in gold])
    assert sum(p.tags == g for p, (_, g) in zip(preds, gold)) >= 36
    meta = json.loads((ner_model / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["task"] == "ner" and meta["scheme"] == "BIOES"
    assert meta["plugins"] == {} and meta["scores"]["dev"]["f1"] > 80
    config = json.loads((ner_model / "config.json").read_text())
    assert config["model"]["encoder"]["num_layers"] == 1  # defaults filled in
    assert not list(ner_model.glob("*.pkl")) and (ner_model / "assets" / "embedding.json").is_file()


def test_predict_texts_gives_spans_with_offsets_and_confidence(ner_model: Path) -> None:
    tagger = seqtag.load(ner_model)
    text = "Yesterday John Smith flew to Paris with Lucy ."
    (pred,) = tagger.predict(text)
    ents = {(e.text, e.label) for e in pred.entities}
    assert ("John Smith", "PER") in ents and ("Paris", "LOC") in ents
    for e in pred.entities:
        assert text[e.start_char: e.end_char] == e.text
        assert 0.0 < e.score <= 1.0
    # token lists, batched, in any order of lengths
    many = tagger.predict([["Lucy", "lives", "in", "Oslo", "."], ["Acme", "Corp", "said"], []], batch_size=2)
    assert many[0].tags[3] == "B-LOC" and many[2].tags == []


def test_evaluate_f1_equals_seqeval_in_both_modes(ner_model: Path) -> None:
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    res = CliRunner().invoke(main, ["evaluate", str(ner_model), "--dataset", str(SAMPLES / "sample_ner"), "--json"])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    gold = corpus.sentences("test", "IOB2")
    pred = [p.tags for p in seqtag.load(ner_model).predict([t for t, _ in gold])]
    g = [t for _, t in gold]
    assert scores["f1"] == pytest.approx(100 * f1_score(g, pred))
    assert scores["strict"]["f1"] == pytest.approx(100 * f1_score(g, pred, mode="strict", scheme=IOB2))
    assert {"f1", "precision", "recall", "per_type", "breakdown"} <= set(scores)


def test_pos_model_and_report(pos_model: Path) -> None:
    res = CliRunner().invoke(main, ["evaluate", str(pos_model), "--dataset", str(SAMPLES / "sample_pos")])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "unseen" in res.output
    res = CliRunner().invoke(main, ["evaluate", str(pos_model), "--dataset", str(SAMPLES / "sample_pos"), "--json"])
    assert json.loads(res.output)["accuracy"] > 90


def test_predict_cli_text_and_conll(ner_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(ner_model), "-"], input="Lucy lives in Oslo .\n\nAcme Corp said\n")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]  # stderr says it read the input as text
    assert len(rows) == 3 and rows[1]["tokens"] == []
    assert rows[0]["entities"][0]["text"] == "Lucy"
    f = tmp_path / "in.conll"
    f.write_text("Lucy\nlives\nin\nOslo\n.\n\nAnna\nsaid\n")
    res = runner.invoke(main, ["predict", str(ner_model), str(f)])
    assert res.exit_code == 0
    blocks = res.output.strip().split("\n\n")
    assert blocks[0].splitlines()[3] == "Oslo\tB-LOC" and len(blocks) == 2
    import torch

    before = torch.get_num_threads()
    try:
        res = runner.invoke(main, ["predict", str(ner_model), str(f), "--threads", "2"])
        assert res.exit_code == 0 and res.output.strip().split("\n\n") == blocks
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    res = runner.invoke(main, ["predict", str(ner_model), str(f), "--threads", "0"])
    assert res.exit_code != 0 and "--threads" in res.output


def test_save_and_reload_in_a_new_process_gives_identical_predictions(ner_model: Path) -> None:
    sents = [["Lucy", "lives", "in", "Oslo", "."], ["Maria", "Garcia", "works", "for", "Reuters", "."]]
    here = [p.to_dict() for p in seqtag.load(ner_model).predict(sents)]
    code = ("import json, sys, seqtag; t = seqtag.load(sys.argv[1]); "
            f"print(json.dumps([p.to_dict() for p in t.predict({sents!r})]))")
    out = subprocess.run([sys.executable, "-c", code, str(ner_model)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    there = json.loads(out.stdout)
    assert [p["tags"] for p in there] == [p["tags"] for p in here]
    for a, b in zip(there, here):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def test_training_is_reproducible_under_a_seed(tmp_path: Path) -> None:
    overrides = {"training": {"max_epochs": 2}}
    _, a = train_small("ner", tmp_path / "a", overrides)
    _, b = train_small("ner", tmp_path / "b", overrides)
    timings = ("tokens_per_second", "seconds")
    assert [{k: v for k, v in e.items() if k not in timings} for e in a["history"]] == \
        [{k: v for k, v in e.items() if k not in timings} for e in b["history"]]


def test_main_job_without_corpus_says_how_to_point_at_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEQTAG_CORPORA", raising=False)
    res = CliRunner().invoke(main, ["train", "--task", "ner", "-o", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert "SEQTAG_CORPORA" in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.skipif(corpora_dir() is None, reason="SEQTAG_CORPORA is not set")
def test_end_to_end_on_a_slice_of_conll2003(tmp_path: Path) -> None:
    """Train on real data for a few hundred steps, save, evaluate above an untrained floor, predict."""
    out = tmp_path / "conll"
    args = ["train", "--task", "ner", "--dataset", "conll2003", "-o", str(out), "--no-progress", "--max-epochs", "2",
            "--set", "training.max_train_sentences=1500", "--set", "training.threads=1",
            "--set", "model.encoder.hidden_size=64", "--set", "training.batch_size=10"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "epoch   2" in res.output and "test F1" in res.output
    res = CliRunner().invoke(main, ["evaluate", str(out), "--split", "dev", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["f1"] > 40.0  # an untrained tagger scores ~0
    res = CliRunner().invoke(main, ["predict", str(out), "-"], input="Germany beat France in Paris on Sunday .\n")
    assert res.exit_code == 0
    labels = {e["label"] for e in json.loads(res.stdout)["entities"]}
    assert labels & {"LOC", "MISC", "ORG", "PER"}


def test_seeds_report_median_min_max(tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    args = ["train", "--task", "ner", "--dataset", str(SAMPLES / "sample_ner"), "--seeds", "2", "--max-epochs", "1",
            "-o", str(out), "--no-progress", "--set", "training.threads=1", "--set", "model.encoder.hidden_size=8"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    tests = [r["test"] for r in report["runs"]]
    assert report["test"] == {"median": pytest.approx(sum(tests) / 2), "min": min(tests), "max": max(tests)}
    assert (out / "seed0" / "model.safetensors").is_file() and (out / "seed1" / "model.safetensors").is_file()
    assert "over 2 seeds" in res.output


# -- building the config: every layer in, then one check -----------------------------------------------
def test_build_config_layers_defaults_config_overrides_and_flags() -> None:
    from seqtag.config import build_config

    user = {"task": "pos", "model": {"encoder": {"type": "lstm.v1", "hidden_size": 9}}, "data": {"strict": True}}
    cfg = build_config(None, user, overrides=["model.encoder.type=gru.v1", "training.max_epochs=2"],
                       data={"dataset": "conll2003", "tag_column": "upos", "scheme": None, "strict": False})
    assert cfg["task"] == "pos" and cfg["scheme"] == "none"  # the task the config names, then POS's scheme
    assert cfg["model"]["encoder"]["type"] == "gru.v1" and cfg["model"]["encoder"]["hidden_size"] == 200
    assert cfg["model"]["embedding"]["type"] == "concat.v1"  # the task's default, filled in
    assert cfg["training"]["max_epochs"] == 2 and cfg["training"]["patience"] == 12
    # flags that were given win over the config; a flag not given (None, False) leaves it alone
    assert cfg["data"] == {"strict": True, "dataset": "conll2003", "tag_column": "upos"}
    assert build_config("ner")["data"] == {} and build_config(None)["task"] == "ner"


def test_flags_and_overrides_are_checked_with_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag.config import build_config
    from seqtag.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^\[data\] must be a table, got int 3$"):
        build_config("ner", {"data": 3}, data={"dataset": "conll2003"})
    with pytest.raises(ConfigError, match=r"^encoder 'lstm.v1': 'hidden_size' must be int, got str 'big'$"):
        build_config("ner", {}, overrides=["model.encoder.hidden_size=big"])
    with pytest.raises(ConfigError, match=r"the config's task 'ner' is not the task trained \('pos'\)"):
        build_config("pos", {}, overrides=["task=ner"])
    with pytest.raises(ConfigError, match=r"^unknown task 'tagging'; expected 'ner' or 'pos'$"):
        build_config(None, {"task": "tagging"})
    with pytest.raises(ConfigError, match=r"^\[training\] max_epochs must be at least 1, got 0$"):
        build_config("ner", {}, overrides=["training.max_epochs=0"])
    # a local dataset path is kept absolute, whichever layer named it; other names stay as they are
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    assert build_config("ner", {"data": {"dataset": "corpus"}})["data"]["dataset"] == str(tmp_path / "corpus")
    spec = build_config("ner", overrides=["data.dataset=train=corpus,dev=missing"])["data"]["dataset"]
    assert spec == f"train={tmp_path / 'corpus'},dev=missing"
    for name in ("conll2003", "owner/name", "\0", "x" * 5000):
        assert build_config("ner", data={"dataset": name})["data"]["dataset"] == name


def test_cli_train_hands_every_flag_to_one_config_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags reach build_config before it checks anything; cli.py only collects them."""
    import seqtag.workflow

    seen: dict[str, object] = {}
    monkeypatch.setattr(seqtag.workflow, "run_training", lambda cfg, out, **kw: seen.update(cfg=cfg, out=out))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "c.toml").write_text('task = "pos"\n[training]\nlr = 0.1\n')
    res = CliRunner().invoke(main, ["train", "--config", "c.toml", "--dataset", "data", "--tag-column", "upos",
                                    "--strict", "--max-epochs", "3", "--seed", "7", "--set", "training.patience=2"])
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    assert isinstance(cfg, dict) and seen["out"] == Path("models/pos")
    assert cfg["data"] == {"dataset": str(tmp_path / "data"), "tag_column": "upos", "strict": True}
    assert {k: cfg["training"][k] for k in ("lr", "max_epochs", "seed", "patience")} == {
        "lr": 0.1, "max_epochs": 3, "seed": 7, "patience": 2}
    res = CliRunner().invoke(main, ["train", "--config", "c.toml", "--task", "ner"])
    assert res.exit_code == 2 and "the config's task 'pos' is not the task trained ('ner')" in res.stderr
