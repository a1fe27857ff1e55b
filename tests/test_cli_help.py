"""The command line for people: every option has a help text and every command examples; evaluate prints
seqeval's report (its average rows too) and the POS per-tag table, writes the metrics with --output;
progress bars on a terminal only; the plugin table fits 100 columns; importing the CLI loads no torch."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import seqtag
import seqtag.tables
from seqtag.cli import LAZY_COMMANDS, main
from seqtag.data import load_corpus
from seqtag.evaluate import ner_averages, ner_scores
from seqtag.predict_io import counting_tokens, predict_lines
from seqtag.tables import BAR_CHARS, PLAIN_WIDTH, format_plugins

from .conftest import ROOT, SAMPLES

FIXTURES = ROOT / "tests" / "fixtures" / "models"
NER_MODEL, POS_MODEL = FIXTURES / "ner-0.1.0", FIXTURES / "pos-0.1.0"
NER_DATA, POS_DATA = SAMPLES / "sample_ner", SAMPLES / "sample_pos"


def _commands() -> list[tuple[str, click.Command]]:
    """The group itself and every command it lists (those of other modules too)."""
    ctx = click.Context(main, info_name="seqtag")
    found = [(name, main.get_command(ctx, name)) for name in main.list_commands(ctx)]
    return [("seqtag", main)] + [(f"seqtag {n}", c) for n, c in found if c is not None]


def _help(command: click.Command, path: str) -> str:
    """The command's help as it prints it when run on its own (its own context settings, as click applies them)."""
    return command.get_help(click.Context(command, info_name=path, **command.context_settings))


def _invoke(*args: object) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("path", [p for p, _ in _commands()])
def test_every_option_has_help_and_every_command_examples(path: str) -> None:
    command = dict(_commands())[path]
    text = _help(command, path)
    for param in command.params:
        if isinstance(param, click.Option):
            if param.name == "help":
                continue
            assert param.help and param.help.strip(), f"{path} {param.opts[0]} has no help text"
        else:  # an argument: its name is in the usage, and the description says what it is
            name = (param.metavar or param.name or "").strip("[].").upper()
            assert text.count(name) >= 2, f"{path}: the help does not describe {name}"
    assert "-h, --help" in text, f"{path} does not take -h when reached on its own"
    assert "Examples:" in text, f"{path} --help has no examples"
    examples = text.split("Examples:", 1)[1].strip().splitlines()
    assert examples and all("seqtag" in line for line in examples if line.strip()), examples


def test_train_help_shows_the_three_most_common_invocations() -> None:
    code, out, _ = _invoke("train", "--help")
    assert code == 0
    calls = [line.strip() for line in out.split("Examples:", 1)[1].splitlines() if line.strip()]
    assert len(calls) == 3 and all(c.startswith("seqtag train ") for c in calls), calls
    assert any("--resume" in c for c in calls) and any("--config" in c for c in calls)


def _rows(text: str, names: list[str]) -> dict[str, list[str]]:
    """The cells of the table rows whose first cell is one of ``names``."""
    rows = {}
    for line in text.splitlines():
        for name in names:
            if line.startswith(name + " "):
                rows[name] = line[len(name):].split()
    return rows


def test_evaluate_ner_prints_seqevals_report_with_its_average_rows() -> None:
    from seqeval.metrics import classification_report

    code, out, err = _invoke("evaluate", NER_MODEL, "--dataset", NER_DATA)
    assert code == 0, err
    gold_sents = load_corpus(str(NER_DATA), "ner").sentences("test", "IOB2")
    pred = [p.tags for p in seqtag.load(NER_MODEL).predict([t for t, _ in gold_sents])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report([g for _, g in gold_sents], pred, output_dict=True, zero_division=0)
    rows = _rows(out, list(report))
    assert set(rows) == set(report) and {"micro avg", "macro avg", "weighted avg"} <= set(rows)
    for name, v in report.items():
        expected = [f"{100 * v[k]:.2f}" for k in ("precision", "recall", "f1-score")] + [str(int(v["support"]))]
        assert rows[name] == expected, (name, rows[name], expected)
    starts = [line.split("  ")[0] for line in out.splitlines()]
    assert starts.index("micro avg") > max(starts.index(t) for t in report if not t.endswith(" avg"))
    assert "strict: F1" in out and "errors:" in out and not err


def test_ner_averages_equal_seqevals_on_random_sequences() -> None:
    from seqeval.metrics import classification_report

    rng = random.Random(3)
    choices = ["O"] + [f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "MISC")]
    for _ in range(300):
        gold = [[rng.choice(choices) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 5))]
        pred = [[rng.choice(choices) for _ in sent] for sent in gold]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = classification_report(gold, pred, output_dict=True, zero_division=0)
        scores = ner_scores(gold, pred)
        ours = ner_averages(scores)
        if not scores["per_type"]:  # no entity anywhere: seqeval's macro average is NaN, ours 0
            assert all(v["f1"] == v["support"] == 0 for v in ours.values())
            continue
        for row in ("micro avg", "macro avg", "weighted avg"):
            for k, ref in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
                assert ours[row][k] == pytest.approx(100 * report[row][ref], abs=1e-9), (row, gold, pred)
            assert ours[row]["support"] == report[row]["support"]


def test_evaluate_pos_prints_the_per_tag_table() -> None:
    code, out, err = _invoke("evaluate", POS_MODEL, "--dataset", POS_DATA)
    assert code == 0, err
    code, js, _ = _invoke("evaluate", POS_MODEL, "--dataset", POS_DATA, "--json")
    per_tag = json.loads(js)["per_tag"]
    assert len(per_tag) >= 5
    table = out.split("tag ", 1)[1].split("most frequent confusions")[0]
    rows = _rows(table, list(per_tag))
    assert rows == {t: [f"{v['accuracy']:.2f}", str(v["support"])] for t, v in per_tag.items()}
    assert "accuracy" in out and "unseen" in out and "gold" in out


def test_evaluate_output_writes_the_metrics_json(tmp_path: Path) -> None:
    metrics = tmp_path / "out" / "metrics.json"
    code, out, err = _invoke("evaluate", NER_MODEL, "--dataset", NER_DATA, "--json", "--output", metrics)
    assert code == 0, err
    assert len(out.splitlines()) == 1  # --json prints one object, as before
    assert json.loads(metrics.read_text(encoding="utf-8")) == json.loads(out)
    assert f"scores written to {metrics}" in err
    assert not list(metrics.parent.glob(".*.tmp"))  # written through a temporary file, renamed into place
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = _invoke("evaluate", NER_MODEL, "--dataset", NER_DATA, "--output", blocker / "metrics.json")
    assert code == 2 and err.startswith(f"error: {blocker / 'metrics.json'}: cannot write the scores")
    assert len(err.strip().splitlines()) == 1


def test_evaluate_report_writes_the_page_beside_the_scores(tmp_path: Path) -> None:
    args = ["evaluate", NER_MODEL, "--dataset", NER_DATA, "--json"]
    code, plain, _ = _invoke(*args)
    code, out, err = _invoke(*args, "--report", tmp_path / "report")
    assert code == 0, err
    with_matrix = json.loads(out)
    assert with_matrix.pop("confusion_matrix")["labels"]  # the report's heat map is scored too
    assert with_matrix == json.loads(plain)  # the other scores are the same
    page = tmp_path / "report" / "report.html"
    assert f"report written to {page}" in err and page.is_file()
    assert (tmp_path / "report" / "confusion.png").is_file()
    assert json.loads((tmp_path / "report" / "scores.json").read_text(encoding="utf-8"))["f1"] == json.loads(out)["f1"]


def test_no_progress_bar_when_piped(tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("Lucy lives in Oslo .\nAcme Corp said\n" * 20, encoding="utf-8")
    res = CliRunner().invoke(main, ["predict", str(NER_MODEL), str(text)])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 40
    assert not any(c in res.output for c in BAR_CHARS) and "\x1b[" not in res.output
    res = CliRunner().invoke(main, ["evaluate", str(NER_MODEL), "--dataset", str(NER_DATA)])
    assert res.exit_code == 0 and not any(c in res.output for c in BAR_CHARS) and "\x1b[" not in res.output


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_predict_draws_a_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "in.txt"
    text.write_text("Lucy lives in Oslo .\nAcme Corp said\n" * 300, encoding="utf-8")
    with open(text, encoding="utf-8") as f:
        plain = list(predict_lines(str(NER_MODEL), f))
    monkeypatch.setenv("TERM", "xterm")
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with open(text, encoding="utf-8") as f:  # standard output is pytest's capture: not a terminal
        with_bar = list(predict_lines(str(NER_MODEL), f))
    drawn = terminal.getvalue()
    assert with_bar == plain and len(plain) == 600
    assert any(c in drawn for c in BAR_CHARS) and "600 lines" in drawn
    assert f"reading {text} as text" in drawn  # the log's lines go above the bar
    terminal.seek(0)
    terminal.truncate()
    with open(text, encoding="utf-8") as f:
        assert list(predict_lines(str(NER_MODEL), f, progress=False)) == plain
    assert not any(c in terminal.getvalue() for c in BAR_CHARS)


def test_evaluate_draws_a_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["evaluate", str(NER_MODEL), "--dataset", str(NER_DATA)]
    plain = CliRunner().invoke(main, args)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(seqtag.tables, "is_terminal", lambda stream: stream is sys.stderr)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert any(c in res.stderr for c in BAR_CHARS) and "scoring" in res.stderr
    tokens = sum(len(t) for t, _ in load_corpus(str(NER_DATA), "ner").sentences("test"))
    assert f"{tokens:,} tokens" in res.stderr  # the bar counted every token of the split
    assert res.stdout == plain.stdout  # the scores are the same with the bar
    res = CliRunner().invoke(main, args + ["--no-progress"])
    assert res.exit_code == 0 and not any(c in res.stderr for c in BAR_CHARS)


def test_counting_tokens_leaves_the_tagger_as_it_was() -> None:
    tagger = seqtag.load(NER_MODEL)
    with seqtag.tables.progress_bar("x", "tokens", enabled=True, stream=_FakeTerminal()) as bar:
        with counting_tokens(tagger, bar):
            tagger.predict([["Lucy", "lives", "in", "Oslo"], [], ["Acme"]])
        assert bar.done == 5
    assert "run_batch" not in vars(tagger) and "predict" not in vars(tagger)


def test_plugin_rows_fit_100_columns() -> None:
    code, out, _ = _invoke("plugins")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= PLAIN_WIDTH
    for name in ("lstm.v1", "crf.v1", "word.v1", "whitespace.v1"):
        assert any(line.split()[1:2] == [name] or line.split()[:1] == [name] for line in lines if line.strip())
    rows = [{"kind": "encoder", "name": "a_rather_long_plugin_name.v1", "distribution": "seqtag-some-plugin",
             "version": "10.20.30", "description": "word " * 80 + ":class:`Thing` and ``code``."},
            {"kind": "head", "name": "h.v1", "distribution": "pyseqtag", "version": None, "description": ""}]
    text = format_plugins(rows, ["encoder", "head"])
    assert max(len(line) for line in text.splitlines()) <= PLAIN_WIDTH
    assert " ".join(text.split()).count("word") == 80 and "Thing and code." in text  # wrapped, not cut


def test_lazy_commands_are_listed_only_when_their_module_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LAZY_COMMANDS, "nosuch", ("seqtag.no_such_module", "command"))
    code, out, _ = _invoke("--help")
    assert code == 0 and "nosuch" not in out and "evaluate" in out
    for name in ("init-config", "debug-data", "plot"):  # other modules' commands, imported when listed
        assert f"  {name} " in out
    code, _, err = _invoke("nosuch")
    assert code == 2 and err.startswith("error: No such command 'nosuch'")


def test_importing_the_cli_loads_neither_torch_nor_matplotlib() -> None:
    code = ("import seqtag.cli, sys; bad = {'torch', 'matplotlib'} & set(sys.modules); "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
