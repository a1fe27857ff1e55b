"""The catalogue of bad inputs (docs/reliability.md): each is answered through the CLI with one line,
``error: <what> (<file>:<line>, what was expected)``, exit status 2 and no traceback; the inputs that
are not errors (CRLF, a BOM, a 10,000-token sentence, an empty sentence) give correct results.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from seqtag.cli import main
from seqtag.data import load_corpus

from .conftest import SAMPLES, reseal

NER = SAMPLES / "sample_ner"
POS = SAMPLES / "sample_pos"
TINY = """\
task = "ner"
[model]
dropout = 0.1
[model.tokenizer]
type = "whitespace.v1"
[model.embedding]
type = "concat.v1"
parts = [ { type = "word.v1", dim = 8, casing_dim = 2 }, { type = "char_cnn.v1", char_dim = 4, filters = 4 } ]
[model.encoder]
type = "lstm.v1"
hidden_size = 8
[training]
max_epochs = 1
batch_size = 16
lr = 0.01
threads = 1
"""


def run(args: list[str], input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def fails(args: list[str], *expected: str, input: str | bytes | None = None) -> str:
    """Run the CLI; assert exit 2 and one ``error:`` line on stderr holding every ``expected`` piece."""
    res = run(args, input)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert isinstance(res.exception, SystemExit)  # not a crash that CliRunner caught
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for piece in expected:
        assert piece in lines[0], f"{piece!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    cfg.write_text(TINY)
    return cfg


def corpus_dir(tmp_path: Path, train: str | bytes, name: str = "data") -> Path:
    """A folder with ``train.conll`` (as given) and the sample dev split."""
    d = tmp_path / name
    d.mkdir()
    (d / "train.conll").write_bytes(train if isinstance(train, bytes) else train.encode("utf-8"))
    shutil.copy(NER / "dev.conll", d / "dev.conll")
    return d


def sample_lines() -> list[str]:
    return (NER / "train.conll").read_text(encoding="utf-8").split("\n")


def train_args(tiny: Path, data: Path, out: Path, *more: str) -> list[str]:
    return ["train", "--config", tiny, "--dataset", data, "-o", out, "--no-progress", *more]


# -- training data -----------------------------------------------------------------------------------


def test_wrong_column_count(tiny: Path, tmp_path: Path) -> None:
    lines = sample_lines()
    lines[6] += " EXTRA"
    d = corpus_dir(tmp_path, "\n".join(lines))
    fails(train_args(tiny, d, tmp_path / "m"), f"{d / 'train.conll'}:7:", "expected 3 columns (as on line 1), found 4")


def test_tag_outside_the_scheme(tiny: Path, tmp_path: Path) -> None:
    lines = sample_lines()
    lines[2] = "works VERB PERSON"
    d = corpus_dir(tmp_path, "\n".join(lines))
    fails(train_args(tiny, d, tmp_path / "m"), f"{d / 'train.conll'}:3:", "tag 'PERSON' is outside the IOB/BIOES scheme",
          "expected O, B-TYPE, I-TYPE")


def test_tag_outside_the_models_labels(ner_model: Path, tmp_path: Path) -> None:
    text = (NER / "test.conll").read_text().replace("B-PER", "B-PERSON").replace("I-PER\n", "I-PERSON\n")
    (tmp_path / "test.conll").write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.endswith("B-PERSON"))
    fails(["evaluate", ner_model, "--dataset", tmp_path / "test.conll"], f"{tmp_path / 'test.conll'}:{line}:",
          "the entity type 'PERSON' (B-PERSON) is not among the model's types (LOC, MISC, ORG, PER)",
          "expected data with the tag set the model was trained on")


def test_pos_tag_outside_the_models_labels_warns_and_counts_as_errors(pos_model: Path, tmp_path: Path) -> None:
    text = (POS / "test.conllu").read_text()
    first = next(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
    bad = first.split("\t")
    bad[3] = "NOUNISH"
    (tmp_path / "test.conllu").write_text(text.replace(first, "\t".join(bad), 1))
    line = text.splitlines().index(first) + 1
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "evaluate", str(pos_model), "--dataset",
                          str(tmp_path / "test.conllu"), "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{tmp_path / 'test.conllu'}:{line}: the tag 'NOUNISH' is not among the model's labels" in res.stderr
    assert json.loads(res.stdout)["accuracy"] < 100.0


def test_i_continuation_breaks_iob2_with_strict(tiny: Path, tmp_path: Path) -> None:
    lines = sample_lines()
    assert lines[2] == "works VERB O"
    lines[2] = "works VERB I-ORG"  # after "Garcia I-PER": an I- that starts an entity
    d = corpus_dir(tmp_path, "\n".join(lines))
    fails(train_args(tiny, d, tmp_path / "m", "--strict"), f"{d / 'train.conll'}:3:",
          "'I-ORG' after 'I-PER' breaks IOB2", "expected an entity to start with B-ORG", "1 sentence(s) in train",
          "train without --strict to repair it")
    res = run(train_args(tiny, d, tmp_path / "m"))  # without --strict: repaired, with a warning
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "; repaired" in res.output


def test_empty_file(tiny: Path, tmp_path: Path) -> None:
    d = corpus_dir(tmp_path, "")
    fails(train_args(tiny, d, tmp_path / "m"), f"{d / 'train.conll'}: the file is empty (no lines)",
          "expected one token per line and blank lines between sentences")


def test_file_of_only_blank_lines(tiny: Path, tmp_path: Path) -> None:
    d = corpus_dir(tmp_path, "\n\n   \n\t\n\n")
    fails(train_args(tiny, d, tmp_path / "m"), f"{d / 'train.conll'}: the file is empty (only blank lines)")


def test_crlf_is_accepted_and_gives_the_same_result(tiny: Path, ner_model: Path, tmp_path: Path) -> None:
    lf = corpus_dir(tmp_path, (NER / "train.conll").read_text(), "lf")
    crlf = corpus_dir(tmp_path, (NER / "train.conll").read_text().replace("\n", "\r\n"), "crlf")
    a = load_corpus(str(lf), "ner")
    b = load_corpus(str(crlf), "ner")
    assert a.sentences("train") == b.sentences("train") and a.split("train")["line"] == b.split("train")["line"]
    res_a, res_b = run(train_args(tiny, lf, tmp_path / "ma")), run(train_args(tiny, crlf, tmp_path / "mb"))
    assert res_a.exit_code == res_b.exit_code == 0, res_b.output
    assert (tmp_path / "ma" / "model.safetensors").read_bytes() == (tmp_path / "mb" / "model.safetensors").read_bytes()
    text = "Lucy lives in Oslo .\n\nAcme Corp said\n"
    out_lf = run(["predict", ner_model, "-"], input=text.encode())
    out_crlf = run(["predict", ner_model, "-"], input=text.replace("\n", "\r\n").encode())
    assert out_lf.exit_code == out_crlf.exit_code == 0 and out_lf.stdout == out_crlf.stdout


def test_bom_is_accepted(ner_model: Path, tmp_path: Path) -> None:
    f = tmp_path / "bom.conll"
    f.write_bytes(b"\xef\xbb\xbf" + (NER / "train.conll").read_bytes())
    c = load_corpus(str(f), "ner")
    assert c.sentences("data")[0][0][0] == "Maria"
    out = run(["predict", ner_model, "-"], input=b"\xef\xbb\xbfLucy lives in Oslo .\n")
    plain = run(["predict", ner_model, "-"], input=b"Lucy lives in Oslo .\n")
    assert out.exit_code == 0 and out.stdout == plain.stdout
    assert json.loads(out.stdout)["tokens"][0] == "Lucy"


def test_non_utf8_bytes_in_training_data(tiny: Path, tmp_path: Path) -> None:
    raw = (NER / "train.conll").read_bytes().split(b"\n")
    raw[3] = b"f\xe9r ADP O"  # Latin-1
    d = corpus_dir(tmp_path, b"\n".join(raw))
    fails(train_args(tiny, d, tmp_path / "m"), f"{d / 'train.conll'}:4:", "bytes that are not UTF-8 at column 2 (0xe9)",
          "save the file as UTF-8")


def test_non_utf8_bytes_in_predict_input(ner_model: Path, tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_bytes(b"Lucy lives in Oslo .\nM\xfcller said\n")
    fails(["predict", ner_model, f], f"{f}:2:", "bytes that are not UTF-8 at column 2 (0xfc)", "save the input as UTF-8")
    fails(["predict", ner_model, "-"], "<stdin>:2:", "not UTF-8", input=f.read_bytes())


def test_a_10000_token_sentence_is_tagged_in_predict(ner_model: Path, tmp_path: Path) -> None:
    words = ["Lucy", "lives", "in", "Oslo", "."] * 2000
    f = tmp_path / "long.txt"
    f.write_text(" ".join(words) + "\nLucy lives in Oslo .\n")
    res = run(["predict", ner_model, f])
    assert res.exit_code == 0, res.output
    long, short = (json.loads(ln) for ln in res.stdout.splitlines())
    assert long["tokens"] == words and len(long["tags"]) == len(long["scores"]) == 10_000
    from seqtag.labels import is_valid

    assert is_valid(long["tags"], "IOB2") and all(0.0 <= s <= 1.0 for s in long["scores"])
    for e in long["entities"]:
        assert " ".join(words[e["start"]:e["end"]]) == e["text"]
    assert short["tokens"] == words[:5]


def test_a_10000_token_sentence_is_accepted_in_training(tiny: Path, tmp_path: Path) -> None:
    """No length limit in training either: the cost is linear (documented in docs/reliability.md).

    The identity encoder keeps the test fast; an LSTM's backward pass over 10,000 steps takes seconds.
    """
    long = "\n".join(f"w{i} X {'B-PER' if i % 50 == 0 else 'O'}" for i in range(10_000))
    short = "\n\n".join((NER / "train.conll").read_text().split("\n\n")[:3])
    d = corpus_dir(tmp_path, short + "\n\n" + long + "\n")
    res = run(train_args(tiny, d, tmp_path / "m", "--set", "model.head.type=softmax.v1",
                         "--set", "model.encoder.type=identity.v1"))
    assert res.exit_code == 0, res.output
    assert "4 training" in res.output and "best dev" in res.output


def test_an_empty_sentence_in_predict_input_gives_an_empty_record(ner_model: Path, tmp_path: Path) -> None:
    res = run(["predict", ner_model, "-"], input="Lucy lives in Oslo .\n\n   \nAcme said\n")
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [len(r["tokens"]) for r in rows] == [5, 0, 0, 2]
    assert rows[1] == {"tokens": [], "tags": [], "scores": [], "entities": [], "offsets": []}
    res = run(["predict", ner_model, "-", "--output-format", "conll"], input="Lucy said\n\nAcme said\n")
    assert res.exit_code == 0 and res.stdout.split("\n\n")[1] == ""  # an empty block for the empty line


# -- configs -----------------------------------------------------------------------------------------


def test_unknown_plugin_name_lists_names_and_the_closest(tiny: Path, tmp_path: Path) -> None:
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.encoder.type=lstmm.v1"),
          "unknown encoder 'lstmm.v1'; available: ", "gru.v1", "lstm.v1, rnn.v1", "Did you mean 'lstm.v1'?")


def test_config_key_the_part_does_not_take(tiny: Path, tmp_path: Path) -> None:
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.encoder.hiden_size=32"),
          "encoder 'lstm.v1' takes no argument 'hiden_size'; it takes: hidden_size, num_layers")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "training.lrr=0.1"), "[training] takes no key 'lrr'", "lr,")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.encodr.hidden_size=3"),
          "[model] takes no key 'encodr'; it takes: tokenizer, embedding, encoder, head, dropout, locked_dropout")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "trainig.lr=0.1"),
          "the config takes no top-level key 'trainig'; it takes: task, scheme, data, model, training")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "data.tag_colum=ner"),
          "[data] takes no key 'tag_colum'; it takes: dataset, tag_column, scheme, strict")


def test_config_table_that_is_not_a_table(tiny: Path, tmp_path: Path) -> None:
    for name in ("training", "data", "model"):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(tiny.read_text(encoding="utf-8").split("[")[0] + f"{name} = 3\n", encoding="utf-8")
        fails(train_args(cfg, NER, tmp_path / "m"), f"[{name}] must be a table, got int 3")


def test_wrong_type_in_a_config_value(tiny: Path, tmp_path: Path) -> None:
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.encoder.hidden_size=big"),
          "encoder 'lstm.v1': 'hidden_size' must be int, got str 'big'")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "training.batch_size=1.5"),
          "[training] batch_size must be int, got float 1.5")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.dropout=lots"),
          "[model] dropout must be a number in [0, 1), got str 'lots'")
    fails(train_args(tiny, NER, tmp_path / "m", "--set", "model.locked_dropout=0.5"),
          "[model] locked_dropout must be true or false, got float 0.5")


# -- model directories -------------------------------------------------------------------------------


@pytest.fixture
def model_copy(ner_model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(ner_model, out, ignore=shutil.ignore_patterns("checkpoint"))
    return out


def test_missing_model_safetensors(model_copy: Path) -> None:
    (model_copy / "model.safetensors").unlink()
    fails(["predict", model_copy, "-"], f"{model_copy / 'model.safetensors'}: missing", input="a b\n")


def test_truncated_model_safetensors(model_copy: Path) -> None:
    f = model_copy / "model.safetensors"
    for size in (f.stat().st_size // 2, 5, 0):
        with open(f, "r+b") as fh:
            fh.truncate(size)
        fails(["evaluate", model_copy, "--dataset", NER], f"{f}: not a valid safetensors file (truncated or another")


class _Payload:
    """Unpickling this runs ``open(path, "w")``: proof that a loader executed code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["pickle", "pickle-protocol-0", "torch.save"])
def test_pickle_renamed_to_model_safetensors_is_refused_and_never_run(model_copy: Path, tmp_path: Path,
                                                                      kind: str) -> None:
    marker = tmp_path / f"pwned-{kind}"
    f = model_copy / "model.safetensors"
    if kind == "torch.save":
        import torch

        torch.save({"payload": _Payload(str(marker))}, f)
    else:
        f.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=0 if kind.endswith("0") else 4))
    line = fails(["predict", model_copy, "-"], f"{f}: ", input="a b\n")
    assert "a pickle or torch.save file" in line or "not a valid safetensors file" in line
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(str(tmp_path / "control"))))  # the same payload, unpickled, does run
    assert (tmp_path / "control").exists()


def test_model_directory_from_a_newer_format_version(model_copy: Path) -> None:
    meta = json.loads((model_copy / "meta.json").read_text())
    meta["format_version"] = 99
    (model_copy / "meta.json").write_text(json.dumps(meta))
    fails(["evaluate", model_copy, "--dataset", NER], f"{model_copy}: model format version 99 is newer than this "
          "seqtag reads (1); upgrade seqtag")


def test_damaged_or_missing_model_files(model_copy: Path, tmp_path: Path) -> None:
    fails(["predict", tmp_path / "nowhere", "-"], "no such model directory", input="a\n")
    (model_copy / "config.json").write_text("{\"task\": ")
    fails(["predict", model_copy, "-"], f"{model_copy / 'config.json'}: not valid JSON", input="a\n")
    (model_copy / "labels.json").unlink()
    (model_copy / "config.json").write_text("{}")
    fails(["predict", model_copy, "-"], f"{model_copy / 'labels.json'}: missing", input="a\n")


def test_dataset_split_that_does_not_exist(ner_model: Path) -> None:
    fails(["evaluate", ner_model, "--dataset", NER, "--split", "nosuch"],
          f"the corpus '{NER}' has no split 'nosuch'; its splits: train, dev, test")


def test_dataset_that_does_not_exist(tiny: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.conll"
    fails(train_args(tiny, missing, tmp_path / "m"), f"{missing}: no such file or folder", "expected a corpus file")


# -- security: loading a model runs no code from its directory ------------------------------------


def test_loading_a_model_runs_no_code_from_its_directory(model_copy: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\n"
    for name in ("__init__.py", "sitecustomize.py", "seqtag.py", "config.py", "model.py", "assets/__init__.py"):
        (model_copy / name).write_text(code)
    monkeypatch.chdir(model_copy)
    res = run(["predict", model_copy, "-"], input="Lucy lives in Oslo .\n")
    assert res.exit_code == 0, res.output
    assert not marker.exists()


def test_a_model_naming_code_instead_of_a_registered_part_is_refused(model_copy: Path) -> None:
    cfg = json.loads((model_copy / "config.json").read_text())
    cfg["model"]["encoder"]["type"] = "os:system"
    (model_copy / "config.json").write_text(json.dumps(cfg))
    reseal(model_copy)  # a consistent manifest: the part name itself is refused
    fails(["predict", model_copy, "-"], f"{model_copy / 'config.json'}: unknown encoder 'os:system'", input="a\n")


def test_with_autoload_off_an_installed_plugin_part_is_refused(model_copy: Path, tmp_path: Path) -> None:
    """A real ``seqtag`` process, started in the model directory, which holds Python files that must not run."""
    import subprocess
    import sys
    from importlib.metadata import entry_points

    plugin = next(iter(entry_points(group="seqtag.encoders")), None)
    if plugin is None:
        pytest.skip("no encoder plugin is installed")
    cfg = json.loads((model_copy / "config.json").read_text())
    cfg["model"]["encoder"] = {"type": plugin.name}
    (model_copy / "config.json").write_text(json.dumps(cfg))
    reseal(model_copy)
    marker = tmp_path / "ran"
    for name in ("sitecustomize.py", "seqtag.py", "torch.py", "usercustomize.py"):
        (model_copy / name).write_text(f"open({str(marker)!r}, 'w').close()\n")
    exe = Path(sys.executable).with_name("seqtag")
    env = {**os.environ, "SEQTAG_DISABLE_PLUGIN_AUTOLOAD": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(exe), "predict", ".", "-"], input="a b\n", cwd=model_copy, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and not marker.exists()
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: config.json: unknown encoder {plugin.name!r}; available: gru.v1, identity.v1, "
                           "lstm.v1, rnn.v1, stack.v1.")  # the built-in parts only
    assert line.endswith("(third-party plugins are off: SEQTAG_DISABLE_PLUGIN_AUTOLOAD is set)")


def test_a_model_needing_an_uninstalled_plugin_names_the_distribution(model_copy: Path) -> None:
    meta = json.loads((model_copy / "meta.json").read_text())
    meta["plugins"] = {"seqtag-nosuch-plugin": "1.2.3"}
    (model_copy / "meta.json").write_text(json.dumps(meta))
    fails(["predict", model_copy, "-"], "needs the plugin distribution 'seqtag-nosuch-plugin' (version 1.2.3)",
          "pip install seqtag-nosuch-plugin", input="a\n")
