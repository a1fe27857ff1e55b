"""The first hour's commands: ``init-config`` writes a complete, commented config that trains as it is;
``debug-data`` reports a corpus with every repair at its file:line and the labels train lacks."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtag.cli import main
from seqtag.config import build_config, resolve
from seqtag.config.help import DATA_HELP, MODEL_HELP, TOP_HELP, docstring_sections, part_arg_docs, plain, training_help
from seqtag.data import load_corpus
from seqtag.debug_data import render_report
from seqtag.init_config import init_config
from seqtag.registry import encoders, tokenizers

from .conftest import ROOT, SAMPLES, corpora_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ASSIGNMENT = re.compile(r'^(# )?[\w"-]+ = ')


def _init(*args: str) -> str:
    res = CliRunner().invoke(main, ["init-config", *args])
    assert res.exit_code == 0, res.output
    return res.stdout


def _without_data(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "data"}


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_init_config_builds_the_default_config_every_key_commented(task: str) -> None:
    text = _init("--task", task)
    written = tomllib.loads(text)
    assert _without_data(build_config(task, written)) == _without_data(build_config(task, {}))
    # every table is complete as written: nothing left for build_config to fill in but what TOML cannot hold
    assert written["model"]["encoder"] == build_config(task, {})["model"]["encoder"]
    assert written["training"] == build_config(task, {})["training"]
    assert written["data"] == {"strict": False, "streaming": False, "stream_sample": 20000}
    assignments = [line for line in text.splitlines() if ASSIGNMENT.match(line)]
    assert len(assignments) > 40
    uncommented = [line for line in assignments if not re.search(r"\S {2,}# \S", line)]
    assert uncommented == []
    assert "# max_size = <int | None>  # left out: none; Keep at most this many words" in text
    assert "hidden_size = 200     # int: State size per direction." in text  # lstm.v1's from GatedEncoder's Args


def test_init_config_chosen_parts_come_with_their_own_defaults() -> None:
    text = _init("--encoder", "rnn.v1", "--head", "softmax.v1", "--tokenizer", "whitespace.v1")
    written = tomllib.loads(text)
    encoder = written["model"]["encoder"]
    assert encoder == resolve("encoder", {"type": "rnn.v1"})
    assert encoder["hidden_size"] == 128 and encoder["nonlinearity"] == "tanh"  # not lstm.v1's 200
    assert written["model"]["head"] == {"type": "softmax.v1", "label_smoothing": 0.0, "temperature": 1.0}  # no crf constrained
    assert written["model"]["tokenizer"] == {"type": "whitespace.v1"}
    embedding = build_config("ner", {})["model"]["embedding"]
    assert build_config("ner", written)["model"]["embedding"] == embedding  # not chosen: the default part
    chosen = init_config("ner", {"encoder": "rnn.v1", "head": "softmax.v1", "tokenizer": "whitespace.v1"})
    assert _without_data(build_config("ner", written)) == _without_data(chosen)
    gru = tomllib.loads(_init("--encoder", "gru.v1"))["model"]["encoder"]
    assert gru == resolve("encoder", {"type": "gru.v1"}) and gru["type"] == "gru.v1" and "dropout" in gru
    # a part that nests parts gets the task's default part as its one entry, written as [[...]] tables
    text = _init("--encoder", "stack.v1", "--task", "pos")
    assert "[[model.encoder.layers]]" in text
    stack = build_config("pos", tomllib.loads(text))["model"]["encoder"]
    assert [layer["type"] for layer in stack["layers"]] == ["lstm.v1"]


def test_init_config_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["init-config", "--encoder", "gruu.v1"])
    assert res.exit_code == 2 and res.output.startswith("error: unknown encoder 'gruu.v1'")
    assert "Did you mean 'gru.v1'?" in res.output and len(res.output.strip().splitlines()) == 1
    out = tmp_path / "ner.toml"
    res = runner.invoke(main, ["init-config", "--output", str(out)])
    assert res.exit_code == 0 and tomllib.loads(out.read_text(encoding="utf-8"))["task"] == "ner"
    res = runner.invoke(main, ["init-config", "--output", str(out), "--task", "pos"])
    assert res.exit_code == 2 and "exists; pass --force" in res.output
    res = runner.invoke(main, ["init-config", "--output", str(out), "--task", "pos", "--force"])
    assert res.exit_code == 0 and tomllib.loads(out.read_text(encoding="utf-8"))["task"] == "pos"


def test_part_docs_come_from_the_part_and_the_classes_it_inherits() -> None:
    docs = part_arg_docs(encoders.get("lstm.v1"))
    assert docs["hidden_size"] == "State size per direction."
    assert set(docs) >= {"hidden_size", "num_layers", "bidirectional", "dropout"}
    assert part_arg_docs(tokenizers.get("spacy.v1"))["lang"].startswith("The spaCy language code")


def test_every_key_has_one_description_shown_by_init_config_and_the_reference() -> None:
    from seqtag.config import TrainingConfig
    from seqtag.config.tables import CONFIG_KEYS, DATA_KEYS, MODEL_KEYS

    training = training_help()
    assert list(training) == list(TrainingConfig().to_dict())  # a new [training] setting needs its help
    assert all(training.values()) and training["optimizer"].endswith("One of `adam`, `adamw`, `sgd`.")
    assert set(DATA_HELP) == set(DATA_KEYS) and set(MODEL_HELP) == set(MODEL_KEYS) and set(TOP_HELP) == set(CONFIG_KEYS)
    text = _init("--task", "ner")
    reference = (ROOT / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    for key, meaning in training.items():  # the same text in both, plain in the TOML comment
        assert f"  # {plain(meaning)}\n" in text and f"| {meaning} |" in reference, key
    assert "threads = 0               # CPU threads for torch (0: the CPUs not busy with other work, docs/scale.md)" in text
    assert '# dataset = "conll2003"  # left out: conll2003; A catalogue name' in text


def test_docstring_sections_summary_entries_and_their_end() -> None:
    doc = """First line of the summary.

    More summary.

    Args:
        alpha (int): The first
            argument, on two lines.
        **beta: The second.
    Returns:
        gamma: not an argument.
    """
    summary, args = docstring_sections(doc)
    assert summary == "First line of the summary.\n\nMore summary."
    assert args == {"alpha": "The first argument, on two lines.", "beta": "The second."}
    assert plain(":class:`~seqtag.vocab.Vocab` and ``x`` ([scale.md](../scale.md))") == "Vocab and x (docs/scale.md)"


def test_init_config_file_trains_as_it_is(tmp_path: Path) -> None:
    config = tmp_path / "ner.toml"
    config.write_text(_init("--task", "ner"), encoding="utf-8")
    out = tmp_path / "model"
    res = subprocess.run([sys.executable, "-m", "seqtag", "train", "--config", str(config), "--dataset",
                          str(SAMPLES / "sample_ner"), "--max-epochs", "1", "--threads", "1", "--no-progress",
                          "--output", str(out)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    default = build_config("ner", {})
    fitted = json.loads((out / "meta.json").read_text(encoding="utf-8"))["scores"]["calibration"]["temperature"]
    assert saved["model"]["head"].pop("temperature") == pytest.approx(fitted, abs=1e-4)  # fitted after training
    assert default["model"]["head"].pop("temperature") == 1.0
    assert saved["model"] == default["model"] and saved["scheme"] == default["scheme"]
    assert saved["training"] == {**default["training"], "max_epochs": 1, "threads": 1}


def _debug(*args: str, text_from_cli: bool = True) -> tuple[dict, str]:
    """The report of ``seqtag debug-data ARGS --json``, and the text the command prints without ``--json``
    (or, to read a large corpus once, the text :func:`render_report` prints of the JSON report)."""
    runner = CliRunner()
    res = runner.invoke(main, ["debug-data", *args, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    if not text_from_cli:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            render_report(report)
        return report, out.getvalue()
    text = runner.invoke(main, ["debug-data", *args])
    assert text.exit_code == 0, text.output
    return report, text.stdout


def test_debug_data_on_the_sample_corpus() -> None:
    report, text = _debug("--dataset", str(SAMPLES / "sample_ner"))
    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner", warn=lambda m: None)
    assert report["scheme"] == {"name": "IOB2", "source": "detected", "detected": "IOB2"} and report["repairs"] == []
    assert [(s["split"], s["sentences"], s["tokens"]) for s in report["splits"]] == \
        [(split, len(corpus.sentences(split)), sum(len(t) for t, _ in corpus.sentences(split)))
         for split in ("train", "dev", "test")]
    assert report["splits"][0]["entities"] == sum(c["train"] for c in report["labels"]["counts"].values())
    assert sum(report["lengths"]["sentences"]["dev"]) == report["splits"][1]["sentences"]
    assert report["warnings"] == [] and report["train_check"] == []
    for section in ("Splits", "Repairs (0 tag(s) breaking IOB2)", "Labels", "Unknown words", "Entity overlap",
                    "Sentence lengths", "Warnings (0)"):
        assert section in text
    assert "\x1b" not in text  # no colour when not a terminal
    assert re.search(r"^PER +114 +31 +34$", text, re.M)  # aligned columns, no padding at the ends of lines


TRAIN = ["John I-PER", "Smith I-PER", "lives O", "in O", "Paris I-LOC", ". O", "",
         "Maria I-PER", "visited O", "Berlin B-LOC", ". O", "",
         "Acme I-ORG", "opened O", "in O", "Oslo I-LOC", "Lima B-LOC", ". O", "",
         "The O", "German B-MISC", "team O", ". O"]
DEV = ["Lucy I-PER", "met O", "Tokyo I-LOC", "Games I-EVENT", ". O", "", "Then O", "Peter B-PER", "left O", ". O"]
TEST = ["Anna I-PER", "lives O", "in O", "Oslo I-LOC", ". O"]


def _planted(tmp_path: Path) -> Path:
    for name, lines in (("train.conll", TRAIN), ("dev.conll", DEV), ("test.conll", TEST)):
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_debug_data_lists_every_repair_and_the_labels_train_lacks_with_their_lines(tmp_path: Path) -> None:
    folder = _planted(tmp_path)
    train, dev = str(folder / "train.conll"), str(folder / "dev.conll")
    report, text = _debug("--dataset", str(folder))
    assert report["scheme"] == {"name": "IOB1", "source": "detected", "detected": "IOB1"}
    breaks = [(r["file"], r["line"], r["token"], r["tag"], r["repaired"]) for r in report["repairs"]]
    assert breaks == [(train, TRAIN.index("Berlin B-LOC") + 1, "Berlin", "B-LOC", "I-LOC"),
                      (train, TRAIN.index("German B-MISC") + 1, "German", "B-MISC", "I-MISC"),
                      (dev, DEV.index("Peter B-PER") + 1, "Peter", "B-PER", "I-PER")]
    assert "Lima" not in {r["token"] for r in report["repairs"]}  # B- after the same type is IOB1
    for file, line, *_ in breaks:
        assert f"{file}:{line} " in text
    assert "'B-LOC' after 'O' breaks IOB1" in report["repairs"][0]["problem"]
    event = f"{dev}:{DEV.index('Games I-EVENT') + 1}"
    assert f"dev: the entity type 'EVENT' never occurs in train (1 token(s), the first at {event})" \
        in report["warnings"]
    (check,) = report["train_check"]
    assert check["stops"] and check["message"].startswith(f"{event}: the entity type 'EVENT'")
    assert "train: 2 tag(s) in 2 sentence(s) break IOB1" in text and "dev: 1 tag(s) in 1 sentence(s)" in text
    given, _ = _debug("--dataset", str(folder), "--scheme", "IOB2")  # as IOB2, each I- opening (10) breaks it
    assert given["scheme"] == {"name": "IOB2", "source": "given", "detected": "IOB1"}
    assert len(given["repairs"]) == 10 and "the tags read as IOB1, not IOB2" in given["warnings"][0]
    assert report["labels"]["counts"]["EVENT"] == {"dev": 1}
    # training says the same: it stops at the dev label (after repairing train and dev)
    res = subprocess.run([sys.executable, "-m", "seqtag", "train", "--dataset", str(folder), "--max-epochs", "1",
                          "--output", str(tmp_path / "m")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 2 and f"error: {check['message']}" in res.stderr
    assert f"{train}:{TRAIN.index('Berlin B-LOC') + 1}: 'B-LOC' after 'O' breaks IOB1" in res.stdout + res.stderr


def test_debug_data_pos_and_bad_input(tmp_path: Path) -> None:
    dev = tmp_path / "dev.conllu"
    dev.write_text("1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    spec = f"train={SAMPLES / 'sample_pos' / 'train.conllu'},dev={dev}"
    report, text = _debug("--dataset", spec, "--task", "pos")
    assert report["scheme"] == {"name": None, "source": None, "detected": None}
    assert report["repairs"] == [] and "Repairs" not in text
    assert f"dev: the tag 'INTJ' never occurs in train (1 token(s), the first at {dev}:1)" in report["warnings"]
    assert [c["stops"] for c in report["train_check"]] == [False]  # POS: training warns and goes on
    assert "no test split: training reports no test score" in report["warnings"]
    assert report["unknown_words"] == [{"split": "dev", "tokens": 1, "unknown": 1, "unknown_lookup": 1, "types": 1,
                                        "unknown_types": 1}]
    res = CliRunner().invoke(main, ["debug-data", "--dataset", str(tmp_path / "missing.conll")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1


@pytest.mark.skipif(corpora_dir() is None or not (corpora_dir() / "conll2003").is_dir(),  # type: ignore[operator]
                    reason="SEQTAG_CORPORA with conll2003 is not set")
def test_debug_data_finds_the_two_iob1_breaks_of_conll2003() -> None:
    report, text = _debug("--dataset", "conll2003", text_from_cli=False)
    train = str(corpora_dir() / "conll2003" / "eng.train")  # type: ignore[operator]
    assert report["scheme"] == {"name": "IOB1", "source": "catalogue", "detected": "IOB1"}
    assert [(r["file"], r["line"], r["token"], r["tag"], r["repaired"]) for r in report["repairs"]] == [
        (train, 152428, "Atlanta", "B-MISC", "I-MISC"), (train, 175436, "Urdu-speaking", "B-MISC", "I-MISC")]
    assert f"{train}:152428 " in text and f"{train}:175436 " in text
    (loading,) = report["load_warnings"]  # what seqtag train warns: the first of them
    assert loading.startswith(f"{train}:152428: 'B-MISC' after 'O' breaks IOB1") and "2 sentence(s)" in loading
    assert [(s["split"], s["sentences"], s["tokens"]) for s in report["splits"]] == [
        ("train", 14041, 203621), ("dev", 3250, 51362), ("test", 3453, 46435)]
    assert report["warnings"] == ["train: 2 tag(s) in 2 sentence(s) break IOB1; loading repairs them (see Repairs), "
                                  "--strict refuses them"]
