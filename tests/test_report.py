"""Pictures and reports: training.png beside a model, `seqtag plot` (one run, several seeds), the confusion
matrices behind the heat maps, and report.html, self-contained, opened in headless Chromium."""

from __future__ import annotations

import io
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import seqtag
from seqtag import history as history_module
from seqtag import plots
from seqtag.commands_plot import plot
from seqtag.data import load_corpus
from seqtag.errors import ConfigError
from seqtag.evaluate import NO_ENTITY, evaluate, ner_confusion, ner_error_breakdown, ner_scores, tag_confusion
from seqtag.history import PICTURE, PICTURE_SETTING, SEEDS_PICTURE, read_history, write_history
from seqtag.labels import spans_from_tags
from seqtag.modeldir import owned_files
from seqtag.report import PICTURES, REPORT, write_report

from .conftest import SAMPLES, SMALL, train_small

TYPES = ("PER", "LOC", "MISC", "ORG")


@pytest.fixture(autouse=True)
def _training_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training draws its picture here, whatever the suite's setting."""
    monkeypatch.delenv(PICTURE_SETTING, raising=False)


def png_info(data: bytes) -> tuple[tuple[int, int], int]:
    """A PNG's (width, height) and how many different colours it has (1: one flat colour)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        rgb = image.convert("RGB")
        return rgb.size, len(rgb.getcolors(maxcolors=1 << 20) or [])


def assert_picture(data: bytes, size: tuple[int, int]) -> None:
    got, colours = png_info(data)
    assert got == size
    assert colours > 20  # lines, bars, text: not one flat colour


def fig_pixels(fig: Any) -> tuple[int, int]:
    w, h = fig.get_size_inches() * plots.DPI
    return round(w), round(h)


# ---- what the pictures draw: the confusion matrices ------------------------------------------------------------

def perturbed(tags: list[str], rng: random.Random) -> list[str]:
    choices = ["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES]
    return [rng.choice(choices) if rng.random() < 0.2 else t for t in tags]


def test_ner_confusion_counts_each_gold_and_each_predicted_entity_once() -> None:
    gold = [[(0, 2, "PER"), (3, 4, "LOC"), (5, 7, "ORG"), (8, 9, "MISC"), (10, 12, "PER")]]
    pred = [[(0, 2, "PER"),  # found
             (3, 4, "ORG"),  # wrong type, same span
             (5, 6, "ORG"),  # same type, other boundaries
             (13, 14, "LOC"),  # spurious; MISC (8, 9) is missed
             (10, 11, "LOC")]]  # other type and boundaries
    m = ner_confusion(gold, pred)
    labels = m["labels"]
    assert labels == ["LOC", "MISC", "ORG", "PER", NO_ENTITY]
    cell = {(g, p): (m["counts"][i][j], m["boundary"][i][j]) for i, g in enumerate(labels) for j, p in enumerate(labels)}
    assert cell["PER", "PER"] == (1, 0) and cell["LOC", "ORG"] == (1, 0) and cell["ORG", "ORG"] == (0, 1)
    assert cell["MISC", NO_ENTITY] == (1, 0) and cell[NO_ENTITY, "LOC"] == (1, 0) and cell["PER", "LOC"] == (0, 1)
    assert sum(map(sum, m["counts"])) + sum(map(sum, m["boundary"])) == 6


def test_ner_confusion_sums_agree_with_the_scores_on_random_predictions() -> None:
    gold = [tags for _, tags in load_corpus(str(SAMPLES / "sample_ner"), "ner").sentences("dev", "IOB2")]
    rng = random.Random(3)
    for _ in range(20):
        pred = [perturbed(t, rng) for t in gold]
        gs, ps = [spans_from_tags(t) for t in gold], [spans_from_tags(t) for t in pred]
        m = ner_confusion(gs, ps)
        scores = ner_scores(gold, pred)
        n = len(m["labels"])
        for i, t in enumerate(m["labels"][:-1]):
            both = [m["counts"][i][j] + m["boundary"][i][j] for j in range(n)]
            assert sum(both) == scores["per_type"][t]["support"]  # each gold entity once
            assert sum(m["counts"][k][i] + m["boundary"][k][i] for k in range(n)) == \
                sum(1 for s in ps for e in s if e[2] == t)  # each predicted entity once
            tp = round(scores["per_type"][t]["recall"] * scores["per_type"][t]["support"] / 100)
            assert m["counts"][i][i] == tp  # the diagonal: the entities found
        assert m["counts"][-1][-1] == 0 and not any(m["boundary"][-1]) and not any(r[-1] for r in m["boundary"])
        errors = ner_error_breakdown([[]] * len(gs), gs, ps)["errors"]
        spurious, missed = sum(m["counts"][-1]), sum(row[-1] for row in m["counts"])
        # an unpaired prediction overlaps no gold entity, or only ones paired with other predictions
        assert errors.get("spurious", 0) <= spurious <= sum(errors.get(k, 0) for k in ("spurious", "both", "boundary"))
        assert errors.get("missed", 0) <= missed


def test_tag_confusion_holds_every_token_and_its_diagonal_the_right_ones() -> None:
    gold = [["DET", "NOUN", "VERB"], ["PRON", "VERB", "PUNCT"]]
    pred = [["DET", "PROPN", "VERB"], ["PRON", "NOUN", "PUNCT"]]
    m = tag_confusion(gold, pred)
    assert m["labels"] == sorted({"DET", "NOUN", "VERB", "PRON", "PUNCT", "PROPN"})
    at = m["labels"].index
    assert sum(map(sum, m["counts"])) == 6 and sum(m["counts"][i][i] for i in range(len(m["labels"]))) == 4
    assert m["counts"][at("NOUN")][at("PROPN")] == 1 and m["counts"][at("VERB")][at("NOUN")] == 1


@dataclass
class _Entity:
    start: int
    end: int
    label: str


@dataclass
class _Prediction:
    tags: list[str]
    entities: list[_Entity]


class FakeTagger:
    """Predicts the tags it is given, in order: what evaluate() needs of a tagger, without training one."""

    def __init__(self, tags: list[list[str]]) -> None:
        self.tags = tags

    def predict(self, tokens: list[list[str]], **_: Any) -> list[_Prediction]:
        assert len(tokens) == len(self.tags)
        return [_Prediction(t, [_Entity(*s) for s in spans_from_tags(t)]) for t in self.tags]


def scores_of(task: str, *, confusion: bool = True, seed: int = 0) -> dict[str, Any]:
    """Scores as seqtag.workflow.evaluate_tagger returns them, of a tagger that gets about one tag in five wrong."""
    corpus = load_corpus(str(SAMPLES / f"sample_{task}"), task)
    scheme = "IOB2" if task == "ner" else None
    gold = corpus.sentences("dev", scheme)
    rng = random.Random(seed)
    if task == "ner":
        pred = [perturbed(tags, rng) for _, tags in gold]
    else:
        tags = sorted({t for _, ts in gold for t in ts})
        pred = [[rng.choice(tags) if rng.random() < 0.2 else t for t in ts] for _, ts in gold]
    scores = evaluate(FakeTagger(pred), gold, task, train_sentences=corpus.sentences("train", scheme),
                      confusion=confusion)
    scores.update({"task": task, "split": "dev", "dataset": f"sample_{task}", "sentences": len(gold)})
    return scores


def test_evaluate_adds_the_matrix_only_when_asked_and_changes_no_other_score() -> None:
    for task in ("ner", "pos"):
        with_matrix = scores_of(task)
        matrix = with_matrix.pop("confusion_matrix")
        assert with_matrix == scores_of(task, confusion=False)
        assert len(matrix["counts"]) == len(matrix["labels"])


# ---- the pictures -------------------------------------------------------------------------------------------

def test_per_type_bars_one_per_type_in_each_series() -> None:
    scores = scores_of("ner")
    fig = plots.per_type_figure(scores["per_type"])
    (ax,) = fig.axes
    assert [c.get_label() for c in ax.containers] == ["precision", "recall", "F1"]
    assert [len(c) for c in ax.containers] == [len(scores["per_type"])] * 3 == [4] * 3
    assert [round(b.get_width(), 6) for b in ax.containers[2]] == \
        [round(scores["per_type"][t]["f1"], 6) for t in sorted(scores["per_type"])]
    assert_picture(plots.png_bytes(fig), fig_pixels(fig))


@pytest.mark.parametrize("task", ["pos", "ner"])
def test_the_heat_map_has_a_cell_per_pair_of_labels(task: str) -> None:
    matrix = scores_of(task)["confusion_matrix"]
    n = len(matrix["labels"])
    fig = plots.confusion_figure(matrix)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == (2 if task == "ner" else 1)  # NER: same boundaries, other boundaries
    for im in images:
        assert im.get_array().shape == (n, n)
    counts = [float(t.get_text()) for ax in fig.axes for t in ax.texts]
    assert sum(counts) == sum(map(sum, matrix["counts"])) + sum(map(sum, matrix.get("boundary", [])))
    assert_picture(plots.png_bytes(fig), fig_pixels(fig))


def test_error_bars_one_per_kind_and_per_confusion() -> None:
    ner, pos = scores_of("ner"), scores_of("pos")
    fig = plots.ner_errors_figure(ner["breakdown"]["errors"])
    (bars,) = fig.axes[0].containers
    assert [b.get_width() for b in bars] == [ner["breakdown"]["errors"].get(k, 0) for k, _ in plots.ERROR_KINDS]
    fig = plots.pos_confusions_figure(pos["confusions"])
    (bars,) = fig.axes[0].containers
    assert len(bars) == len(pos["confusions"]) > 0
    assert_picture(plots.png_bytes(fig), fig_pixels(fig))


def test_labels_are_drawn_as_written_not_as_mathtext() -> None:
    matrix = {"labels": ["$", "``", "$x$", "a_b^c"], "counts": [[1, 2, 0, 0], [0, 3, 1, 0], [0, 0, 2, 0], [1, 0, 0, 1]]}
    fig = plots.confusion_figure(matrix)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == matrix["labels"]
    assert png_info(plots.png_bytes(fig))[1] > 20  # it renders


# ---- training.png and seqtag plot ------------------------------------------------------------------------------

def test_training_draws_its_curves_beside_the_model(tmp_path: Path) -> None:
    out = tmp_path / "m"
    train_small("ner", out, {"training": {"max_epochs": 2, "patience": 2}})
    assert_picture((out / PICTURE).read_bytes(), (900, 340))
    assert PICTURE not in owned_files(out)  # not a model file: the manifest, loading and push ignore it
    seqtag.load(out)  # the SHA-256 manifest check passes
    fig = plots.curves_figure([("", read_history(out))], metric=plots.dev_metric("ner"))
    loss_ax, dev_ax = fig.axes[:2]
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [2]
    assert dev_ax.get_title().startswith("dev F1 (%): best")
    config = (out / "config.json").read_bytes()
    res = CliRunner().invoke(plot, [str(out), "-o", str(out / "config.json")])
    assert res.exit_code == 2 and "a file of the model" in res.output and (out / "config.json").read_bytes() == config
    with pytest.raises(ConfigError, match="inside the model"):
        write_report(scores_of("ner"), out / "assets")


def test_a_picture_that_cannot_be_drawn_never_stops_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(plots, "curves_figure", broken)
    monkeypatch.setattr(history_module, "_warned", False)
    out = tmp_path / "m"
    train_small("pos", out, {"training": {"max_epochs": 3, "patience": 3}})
    assert [e["epoch"] for e in read_history(out)] == [1, 2, 3] and not (out / PICTURE).exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if PICTURE in line]
    assert len(warnings) == 1 and "no fonts today" in warnings[0] and "seqtag plot" in warnings[0]


def test_the_setting_turns_the_training_picture_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    epochs = [{"epoch": 1, "loss": 2.0, "dev": 50.0, "lr": 0.01, "tokens_per_second": 1e3, "seconds": 1.0}]
    monkeypatch.setenv(PICTURE_SETTING, "0")
    write_history(tmp_path / "off", epochs)
    assert read_history(tmp_path / "off") == epochs and not (tmp_path / "off" / PICTURE).exists()
    monkeypatch.setenv(PICTURE_SETTING, "1")
    write_history(tmp_path / "on", epochs)
    assert_picture((tmp_path / "on" / PICTURE).read_bytes(), (900, 340))


def test_plot_redraws_a_run_and_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "history.jsonl").write_text("".join(json.dumps(
        {"epoch": e, "loss": 5.0 / e, "dev": 50 + 4 * e, "lr": 0.01 if e < 4 else 0.001, "tokens_per_second": 9e3,
         "seconds": e} ) + "\n" for e in range(1, 7)))
    res = CliRunner().invoke(plot, [str(model)])
    assert res.exit_code == 0, res.output
    assert_picture((model / PICTURE).read_bytes(), (900, 340))
    res = CliRunner().invoke(plot, [str(model), "-o", str(tmp_path / "curves.png")])
    assert res.exit_code == 0 and (tmp_path / "curves.png").is_file()
    for args, expected in (([str(tmp_path / "none")], "no such folder"),
                           ([str(tmp_path)], "no history.jsonl to draw"),
                           ([str(model), "--seeds", "2"], "draw this single run without --seeds")):
        res = CliRunner().invoke(plot, args)
        assert res.exit_code == 2, res.output
        assert res.output.startswith("error: ") and expected in res.output and res.output.count("\n") == 1
    (model / "history.jsonl").write_text('{"epoch": 1, "loss": 1, "dev": 2}\n{"epoch": 2,\n')
    res = CliRunner().invoke(plot, [str(model)])
    assert res.exit_code == 2 and f"{model / 'history.jsonl'}:2:" in res.output


def test_plot_seeds_draws_every_seed_in_one_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag.config import build_config, merge
    from seqtag.workflow import run_training

    cfg = build_config("ner", merge(SMALL, {"training": {"max_epochs": 2, "patience": 2}}),
                       data={"dataset": str(SAMPLES / "sample_ner")})
    out = tmp_path / "seeds"
    run_training(cfg, out, seeds=2, progress=False, log=lambda m: None)
    assert (out / "seeds.json").is_file()
    drawn: list[Any] = []
    original = plots.curves_figure

    def spy(*args: Any, **kwargs: Any) -> Any:
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "curves_figure", spy)
    res = CliRunner().invoke(plot, [str(out), "--seeds", "2"])
    assert res.exit_code == 0, res.output
    assert_picture((out / SEEDS_PICTURE).read_bytes(), (900, 340))
    dev_ax = drawn[-1].axes[1]
    assert [t.get_text() for t in dev_ax.get_legend().get_texts()] == ["seed 0", "seed 1"]
    res = CliRunner().invoke(plot, [str(out), "--seeds", "3"])
    assert res.exit_code == 2 and "holds 2 seed runs (seed0, seed1), fewer than the 3 asked for" in res.output
    res = CliRunner().invoke(plot, [str(out)])
    assert res.exit_code == 2 and "pass --seeds N" in res.output


# ---- report.html --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["ner", "pos"])
def test_the_report_holds_its_tables_and_pictures_inline(task: str, tmp_path: Path) -> None:
    scores = scores_of(task)
    page = write_report(scores, tmp_path / "r", title="a <b>bold</b> & title")
    assert page == tmp_path / "r" / REPORT
    text = page.read_text(encoding="utf-8")
    expected = ["per_type.png", "errors.png", "confusion.png"] if task == "ner" else ["errors.png", "confusion.png"]
    assert sorted(p.name for p in (tmp_path / "r").glob("*.png")) == sorted(expected)
    assert text.count('src="data:image/png;base64,') == len(expected)
    assert "http" not in text.replace("http-equiv", "") and "<b>" not in text and "a &lt;b&gt;bold" in text
    for name in expected:
        assert png_info((tmp_path / "r" / name).read_bytes())[1] > 20
    assert json.loads((tmp_path / "r" / "scores.json").read_text()) == json.loads(json.dumps(scores))


def test_a_report_replaces_the_last_one_in_its_folder(tmp_path: Path) -> None:
    write_report(scores_of("ner"), tmp_path)
    write_report(scores_of("pos", confusion=False), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["errors.png"]
    assert "no confusion matrix" in (tmp_path / REPORT).read_text()
    assert set(PICTURES) >= {"per_type.png", "errors.png", "confusion.png"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        write_report(scores_of("pos"), tmp_path / "file")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def test_the_report_opens_in_headless_chromium_offline_and_clean(tmp_path: Path) -> None:
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium binary here (.ci/setup installs one where it can)")
    from playwright.sync_api import sync_playwright

    pages = [write_report(scores_of(task), tmp_path / task) for task in ("ner", "pos")]
    leaky = tmp_path / "leaky.html"  # the same page asking the network for a picture: the check must see it
    leaky.write_text(pages[0].read_text().replace("<footer>", '<img src="http://127.0.0.1:9/x.png"><footer>'))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True)
        try:
            seen = {}
            for page_path in [*pages, leaky]:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                console: list[str] = []
                requests: list[str] = []
                page.on("console", lambda m, c=console: c.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e, c=console: c.append(f"pageerror: {e}"))
                page.on("request", lambda r, q=requests: q.append(r.url))
                page.goto(page_path.as_uri(), wait_until="load")
                images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
                shot = page.screenshot(full_page=True)
                seen[page_path] = (console, requests, images, shot)
                page.close()
        finally:
            browser.close()
    for page_path in pages:
        console, requests, images, shot = seen[page_path]
        assert console == [], console
        assert requests == [page_path.as_uri()], requests  # the page itself, nothing else
        pngs = sorted(page_path.parent.glob("*.png"))
        assert len(images) == len(pngs) and all(done and width > 0 for done, width in images), images
        (width, height), colours = png_info(shot)
        assert width == 1200 and height > 900 and colours > 50
    console, requests, *_ = seen[leaky]
    assert any("127.0.0.1" in m for m in console) or len(requests) > 1  # refused by the page's policy, and said
