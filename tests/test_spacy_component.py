"""The spaCy component ``seqtag`` with real spaCy: annotations equal the tagger's own predictions,
serialization (to_disk/spacy.load in a fresh process, to_bytes, pickle), multiprocessing, scoring
with ``spacy evaluate``, the lazy import, and the ``seqtag spacy-package`` command.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import spacy
from click.testing import CliRunner
from spacy.tokens import Doc, DocBin, Span

import seqtag
from seqtag.cli import main as cli_main
from seqtag.errors import ConfigError, ModelLoadError, SeqtagError
from seqtag.labels import convert
from seqtag.readers import read_conll, read_conllu
from seqtag.spacy_component import SCORE_EXTENSION, SeqtagComponent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SAMPLES, SMALL, corpora_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(args[:4])}... failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _gold(task: str, split: str = "test") -> list[tuple[list[str], list[str]]]:
    from seqtag.data import load_corpus

    corpus = load_corpus(str(SAMPLES / f"sample_{task}"), task)
    return corpus.sentences(split, "IOB2" if task == "ner" else None)


def _nlp(model: Path | str, **cfg: Any) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(model), **cfg})
    return nlp


def _ents(doc: Doc) -> list[tuple[int, int, str, float]]:
    return [(e.start, e.end, e.label_, e._.get(SCORE_EXTENSION)) for e in doc.ents]


def _pred_ents(pred: Any) -> list[tuple[int, int, str, float]]:
    return [(e.start, e.end, e.label, e.score) for e in pred.entities]


def assert_same_ents(got: list, want: list, tol: float = 1e-4) -> None:
    """Entity lists per doc agree on spans and labels exactly and on confidences within ``tol``.

    Confidences move in the last digits with the batch a sentence is padded into (float sums).
    """
    assert [[tuple(e[:3]) for e in d] for d in got] == [[tuple(e[:3]) for e in d] for d in want]
    for d_got, d_want in zip(got, want):
        for e_got, e_want in zip(d_got, d_want):
            assert abs(e_got[3] - e_want[3]) <= tol, (e_got, e_want)


def _docs(nlp: spacy.Language, sents: list[list[str]]) -> list[Doc]:
    return [Doc(nlp.vocab, words=words) for words in sents]


def check_ner_equal(model: Path | str, sents: list[list[str]]) -> list[Doc]:
    nlp = _nlp(model)
    docs = list(nlp.pipe(_docs(nlp, sents), batch_size=64))
    preds = seqtag.load(model).predict(sents)
    assert_same_ents([_ents(d) for d in docs], [_pred_ents(p) for p in preds])
    assert any(d.ents for d in docs)
    for doc in docs:
        assert doc.has_annotation("ENT_IOB") or not len(doc)
        for ent in doc.ents:
            score = ent._.seqtag_score
            assert isinstance(score, float) and 0.0 <= score <= 1.0
    return docs


def check_pos_equal(model: Path | str, sents: list[list[str]]) -> list[Doc]:
    nlp = _nlp(model)
    docs = list(nlp.pipe(_docs(nlp, sents)))
    preds = seqtag.load(model).predict(sents, with_confidence=False)
    assert [[t.tag_ for t in d] for d in docs] == [p.tags for p in preds]
    assert [[t.pos_ for t in d] for d in docs] == [p.tags for p in preds]  # UPOS labels: pos_ is set too
    return docs


# -- equality with the tagger's predictions ---------------------------------------------------------------
def test_ner_ents_equal_tagger_predictions(ner_model: Path) -> None:
    sents = [t for t, _ in _gold("ner")]
    check_ner_equal(ner_model, sents)
    nlp = _nlp(ner_model)
    one = nlp(Doc(nlp.vocab, words=sents[0]))  # __call__ agrees with pipe
    assert_same_ents([_ents(one)], [_pred_ents(seqtag.load(ner_model).predict([sents[0]])[0])])


def test_pos_tags_equal_tagger_predictions(pos_model: Path) -> None:
    check_pos_equal(pos_model, [t for t, _ in _gold("pos")])


def test_score_extension_registered_and_in_range(ner_model: Path) -> None:
    assert Span.has_extension(SCORE_EXTENSION)  # registered when the module is imported
    nlp = _nlp(ner_model)
    doc = nlp("Wei Chen works for Reuters in South Africa .")
    assert doc.ents and all(0.0 <= e._.seqtag_score <= 1.0 for e in doc.ents)
    outside = next(t.i for t in doc if t.ent_iob_ == "O")
    assert doc[outside: outside + 1]._.seqtag_score is None  # other spans keep the default
    SeqtagComponent("again", model=str(ner_model))  # registering twice is safe
    saved = Span.get_extension(SCORE_EXTENSION)
    Span.set_extension(SCORE_EXTENSION, getter=lambda span: 1.0, force=True)  # someone else's, read-only
    try:
        with pytest.raises(ConfigError, match="read-only getter"):
            SeqtagComponent("clash", model=str(ner_model))
    finally:
        default, method, getter, setter = saved
        Span.set_extension(SCORE_EXTENSION, default=default, force=True)


def test_empty_and_whitespace_docs(ner_model: Path, pos_model: Path) -> None:
    nlp = _nlp(ner_model)
    docs = list(nlp.pipe([Doc(nlp.vocab), "", "   \n\n  ", "Paris"]))
    assert [len(d.ents) for d in docs[:3]] == [0, 0, 0]
    spaced = nlp("Wei Chen\n\nworks for Reuters")  # whitespace tokens are skipped, not tagged
    ents = [(e.text, e.label_) for e in spaced.ents]
    words = [t.text for t in spaced if not t.is_space]
    assert ents == [(e.text, e.label) for e in seqtag.load(ner_model).predict([words])[0].entities]
    pos = _nlp(pos_model)
    doc = pos("The cat\n\nsat .")
    assert doc[2].tag_ == "_SP" and doc[2].pos_ == "SPACE" and doc[0].tag_ not in ("", "_SP")
    assert len(pos(Doc(pos.vocab))) == 0


def test_long_docs_are_cut_at_sentence_ends(ner_model: Path) -> None:
    sents = [t for t, _ in _gold("ner")]
    words = [w for s in sents for w in s] * 6  # longer than any training sentence
    nlp = _nlp(ner_model, max_tokens=100)
    comp = nlp.get_pipe("seqtag")
    doc = Doc(nlp.vocab, words=words)
    segments = comp._segments(doc)
    assert [i for seg in segments for i in seg] == list(range(len(words)))
    assert all(0 < len(seg) <= 100 for seg in segments) and len(segments) >= len(words) // 100
    assert all(doc[seg[-1]].text == "." for seg in segments[:-1])  # the sample sentences end in "."
    doc = nlp(doc)
    assert doc.ents and all(e.end <= len(doc) for e in doc.ents)
    # a doc with sentence boundaries is tagged sentence by sentence once it is too long
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("sentencizer")
    nlp2.add_pipe("seqtag", config={"model": str(ner_model), "max_tokens": 20})
    text_words = [w for s in sents[:8] for w in s]
    doc2 = nlp2(Doc(nlp2.vocab, words=text_words))
    offsets, expected = 0, []
    sent_words = [[t.text for t in s] for s in doc2.sents]
    for s, pred in zip(sent_words, seqtag.load(ner_model).predict(sent_words)):
        expected += [(offsets + e.start, offsets + e.end, e.label, e.score) for e in pred.entities]
        offsets += len(s)
    assert_same_ents([_ents(doc2)], [expected])
    assert _nlp(ner_model, max_tokens=0).get_pipe("seqtag")._segments(Doc(nlp.vocab, words=words)) == \
        [list(range(len(words)))]


def test_span_group_and_existing_entities(ner_model: Path) -> None:
    words = "Wei Chen works for Reuters in South Africa .".split()
    expected = _pred_ents(seqtag.load(ner_model).predict([words])[0])
    assert len(expected) >= 2
    nlp = _nlp(ner_model, spans_key="seqtag")
    doc = Doc(nlp.vocab, words=words)
    doc.ents = [Span(doc, 2, 3, label="OTHER")]
    doc = nlp(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [("works", "OTHER")]  # untouched
    assert_same_ents([[(s.start, s.end, s.label_, s._.seqtag_score) for s in doc.spans["seqtag"]]], [expected])
    first = expected[0]
    for overwrite, kept_other in ((False, True), (True, False)):
        nlp = _nlp(ner_model, overwrite_ents=overwrite)
        doc = Doc(nlp.vocab, words=words)
        doc.ents = [Span(doc, first[0], first[1], label="OTHER")]  # overlaps the tagger's first entity
        doc = nlp(doc)
        labels = [(e.start, e.end, e.label_) for e in doc.ents]
        assert ((first[0], first[1], "OTHER") in labels) is kept_other
        assert_same_ents([[e for e in _ents(doc) if e[2] != "OTHER"]], [expected[1:] if kept_other else expected])
        assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)


def test_label_spacy_cannot_take_warns_once(pos_model: Path, tmp_path: Path) -> None:
    tagger = seqtag.load(pos_model)
    tagger.labels[tagger.labels.index("NOUN")] = "NN"  # an XPOS-style tag in an otherwise UPOS tagger
    tagger.save(tmp_path / "mixed")
    nlp = _nlp(tmp_path / "mixed")
    sents = [t for t, _ in _gold("pos")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(nlp.pipe(_docs(nlp, sents)))
    msgs = [str(w.message) for w in caught if "seqtag" in str(w.message)]
    assert len(msgs) == 1 and "'NN'" in msgs[0] and "token.pos_" in msgs[0]
    nn = [t for d in docs for t in d if t.tag_ == "NN"]
    assert nn and all(t.pos_ == "" for t in nn)
    assert _nlp(tmp_path / "mixed", set_pos=False)("a cat .")[1].pos_ == ""


def test_missing_model_and_bad_settings_are_seqtag_errors(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag")
    with pytest.raises(ConfigError, match="has no tagger"):
        nlp("hello")
    nlp = _nlp(tmp_path / "nowhere")  # lazy: adding works, the first doc says what is missing
    with pytest.raises(ModelLoadError, match="no such model directory"):
        nlp("hello")
    with pytest.raises(ModelLoadError, match="no such model directory"):
        nlp.initialize()
    with pytest.raises(SeqtagError, match="batch_size"):
        _nlp(tmp_path, batch_size=0)
    with pytest.raises(ModelLoadError, match="not a seqtag tagger"):
        SeqtagComponent().from_bytes(b"\x81\xa1a\x01")


def test_initialize_loads_from_setting(ner_model: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag")
    nlp.config["initialize"]["components"]["seqtag"] = {"model": str(ner_model)}
    nlp.initialize()
    assert nlp.get_pipe("seqtag")._tagger is not None  # loaded eagerly, not on the first doc
    assert [(e.text, e.label_) for e in nlp("Wei Chen works for Reuters in South Africa .").ents]


# -- serialization --------------------------------------------------------------------------------------
_LOAD_SCRIPT = """
import json, sys
import torch; torch.set_num_threads(1)
import spacy
from spacy.tokens import Doc
out = {}
for path in sys.argv[2:]:
    nlp = spacy.load(path)
    sents = json.load(open(sys.argv[1]))
    out[path] = [[(e.start, e.end, e.label_, e._.seqtag_score) for e in d.ents]
                 for d in nlp.pipe(Doc(nlp.vocab, words=w) for w in sents)]
print(json.dumps(out))
"""


def test_to_disk_then_spacy_load_in_fresh_process(ner_model: Path, tmp_path: Path) -> None:
    sents = [t for t, _ in _gold("ner")]
    nlp = _nlp(ner_model)
    expected = [[list(e) for e in _ents(d)] for d in nlp.pipe(_docs(nlp, sents))]
    nlp.to_disk(tmp_path / "pipe")
    assert seqtag.load(tmp_path / "pipe" / "seqtag").labels == seqtag.load(ner_model).labels  # seqtag's format
    runner = CliRunner()
    res = runner.invoke(cli_main, ["spacy-package", str(ner_model), str(tmp_path / "pkg"), "--lang", "en"])
    assert res.exit_code == 0, res.output
    assert "model = null" in (tmp_path / "pkg" / "config.cfg").read_text()
    (tmp_path / "sents.json").write_text(json.dumps(sents))
    proc = _run([sys.executable, "-c", _LOAD_SCRIPT, str(tmp_path / "sents.json"), str(tmp_path / "pipe"),
                 str(tmp_path / "pkg")])
    got = json.loads(proc.stdout)
    assert_same_ents(got[str(tmp_path / "pipe")], expected)
    assert_same_ents(got[str(tmp_path / "pkg")], expected)
    assert nlp.get_pipe("seqtag").labels == tuple(json.loads((tmp_path / "pkg" / "meta.json").read_text())
                                                  ["labels"]["seqtag"])


def test_spacy_package_errors(ner_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    res = runner.invoke(cli_main, ["spacy-package", str(ner_model), str(tmp_path / "full")])
    assert res.exit_code == 2 and "not an empty folder" in res.output
    res = runner.invoke(cli_main, ["spacy-package", str(ner_model), str(tmp_path / "o"), "--lang", "zz"])
    assert res.exit_code == 2 and "'zz'" in res.output
    res = runner.invoke(cli_main, ["spacy-package", str(tmp_path / "none"), str(tmp_path / "o2")])
    assert res.exit_code == 2 and "no such model directory" in res.output


def test_to_bytes_round_trip(ner_model: Path, pos_model: Path) -> None:
    import srsly

    for model in (ner_model, pos_model):
        nlp = _nlp(model)
        data = nlp.to_bytes()
        msg = srsly.msgpack_loads(nlp.get_pipe("seqtag").to_bytes())
        assert msg["format"] == "seqtag-tagger-files" and "model.safetensors" in msg["files"]
        assert not any(k.endswith((".pkl", ".pt", ".bin")) for k in msg["files"])  # seqtag's files, no pickle
        nlp2 = spacy.blank("en")
        nlp2.add_pipe("seqtag")
        nlp2.from_bytes(data)
        text = "Wei Chen works for Reuters in South Africa . Maria flew to Paris ."
        a, b = nlp(text), nlp2(text)
        assert_same_ents([_ents(a)], [_ents(b)])
        assert [t.tag_ for t in a] == [t.tag_ for t in b]


def test_pickle_and_n_process(ner_model: Path) -> None:
    sents = [t for t, _ in _gold("ner")]
    nlp = _nlp(ner_model)
    comp = nlp.get_pipe("seqtag")
    lazy = pickle.loads(pickle.dumps(comp))  # not loaded yet: rebuilt from its path
    assert lazy._tagger is None and lazy.model_path == str(ner_model)
    one = [_ents(d) for d in nlp.pipe(_docs(nlp, sents), n_process=1)]
    clone = pickle.loads(pickle.dumps(comp))  # loaded: carries the tagger's files as bytes
    assert clone._tagger is not None
    assert_same_ents([_ents(d) for d in clone.pipe(_docs(nlp, sents))], one)
    two = [_ents(d) for d in nlp.pipe(_docs(nlp, sents), n_process=2, batch_size=8)]
    assert_same_ents(two, one)


# -- scoring ----------------------------------------------------------------------------------------------
def _docbin(path: Path, pairs: list[tuple[list[str], list[str]]], task: str) -> None:
    vocab = spacy.blank("en").vocab
    db = DocBin()
    for words, tags in pairs:
        if task == "ner":
            db.add(Doc(vocab, words=words, ents=tags))
        else:
            db.add(Doc(vocab, words=words, tags=tags, pos=tags))
    db.to_disk(path)


def check_evaluate_matches(model: Path, pairs: list[tuple[list[str], list[str]]], dataset: str,
                           tmp_path: Path) -> tuple[float, float]:
    """``spacy evaluate`` on a DocBin of the gold sentences against ``seqtag evaluate --json``."""
    _nlp(model).to_disk(tmp_path / "pipe")
    _docbin(tmp_path / "gold.spacy", pairs, "ner")
    _run([sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "pipe"), str(tmp_path / "gold.spacy"),
          "--gold-preproc", "--output", str(tmp_path / "scores.json")])
    spacy_f = 100 * json.loads((tmp_path / "scores.json").read_text())["ents_f"]
    res = CliRunner().invoke(cli_main, ["evaluate", str(model), "--dataset", dataset, "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    seqtag_f = json.loads(res.output)["f1"]
    assert abs(spacy_f - seqtag_f) <= 0.1, (spacy_f, seqtag_f)
    return spacy_f, seqtag_f


def test_spacy_evaluate_matches_seqtag_evaluate(ner_model: Path, tmp_path: Path) -> None:
    check_evaluate_matches(ner_model, _gold("ner"), str(SAMPLES / "sample_ner"), tmp_path)


def test_nlp_evaluate_pos_accuracy(pos_model: Path) -> None:
    from spacy.training import Example

    pairs = _gold("pos")
    nlp = _nlp(pos_model)
    vocab = nlp.vocab
    examples = [Example(Doc(vocab, words=w), Doc(vocab, words=w, tags=t, pos=t)) for w, t in pairs]
    scores = nlp.evaluate(examples)
    res = CliRunner().invoke(cli_main, ["evaluate", str(pos_model), "--dataset", str(SAMPLES / "sample_pos"),
                                        "--json"])
    acc = json.loads(res.output)["accuracy"]
    assert abs(100 * scores["tag_acc"] - acc) < 1e-6 and abs(100 * scores["pos_acc"] - acc) < 1e-6


# -- the import cost --------------------------------------------------------------------------------------
_IMPORT_SCRIPT = """
import importlib.abc, json, sys, traceback

attempts = []

class BlockTorch(importlib.abc.MetaPathFinder):
    # thinc imports torch when it can; blocked here, any attempt from seqtag's own code is recorded
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            attempts.append([f.filename for f in traceback.extract_stack()])
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTorch())
import spacy
nlp = spacy.blank("en")
nlp.add_pipe("seqtag", config={"model": sys.argv[1]})
print(json.dumps({
    "torch": "torch" in sys.modules,
    "component": "seqtag.spacy_component" in sys.modules,
    "seqtag_attempts": sum(any("/seqtag/" in f for f in stack) for stack in attempts),
    "heavy": [m for m in ("seqtag.tagger", "seqtag.model", "seqtag.registry") if m in sys.modules],
}))
"""


def test_blank_pipeline_does_not_import_torch(ner_model: Path) -> None:
    proc = _run([sys.executable, "-c", _IMPORT_SCRIPT, str(ner_model)])
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"torch": False, "component": True, "seqtag_attempts": 0, "heavy": []}


# -- real corpora (SEQTAG_CORPORA) ------------------------------------------------------------------------
def _train(task: str, train_pairs: list, dev_pairs: list, out: Path) -> Path:
    from seqtag.config import merge
    from seqtag.trainer import build_config, train

    cfg = build_config(task, merge(SMALL, {"training": {"max_epochs": 3, "max_steps": 300, "batch_size": 16,
                                                        "eval_batch_size": 256}}))
    if task == "ner":
        train_pairs = [(t, convert(g, "IOB2", cfg["scheme"])) for t, g in train_pairs]
    train(cfg, train_pairs, dev_pairs, out, progress=False, log=lambda m: None)
    return out


def _conll(path: Path, n: int | None = None) -> list[tuple[list[str], list[str]]]:
    return [(s.tokens, convert(s.tags, "IOB1", "IOB2")) for s in read_conll(path, tag_column=3)[:n]]


@pytest.fixture(scope="module")
def corpora() -> Path:
    root = corpora_dir()
    if root is None or not (root / "conll2003" / "eng.testb").is_file():
        pytest.skip("SEQTAG_CORPORA is not set (or has no conll2003)")
    return root


@pytest.mark.slow
def test_conll2003_slice(corpora: Path, tmp_path: Path) -> None:
    root = corpora / "conll2003"
    model = _train("ner", _conll(root / "eng.train", 2000), _conll(root / "eng.testa", 200), tmp_path / "ner")
    test = _conll(root / "eng.testb")  # the whole test split
    check_ner_equal(model, [t for t, _ in test])
    gold = tmp_path / "testb.conll"
    gold.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(*p)) for p in test) + "\n", encoding="utf-8")
    f_spacy, f_seqtag = check_evaluate_matches(model, test, f"test={gold}", tmp_path)
    assert 0 < f_seqtag < 100  # a real, imperfect score


@pytest.mark.slow
def test_ud_ewt_slice(corpora: Path, tmp_path: Path) -> None:
    root = corpora / "ud_english_ewt"
    if not (root / "en_ewt-ud-test.conllu").is_file():
        pytest.skip("no UD EWT in SEQTAG_CORPORA")
    pairs = lambda name, n: [(s.tokens, s.tags) for s in read_conllu(root / name)[:n]]  # noqa: E731
    model = _train("pos", pairs("en_ewt-ud-train.conllu", 2000), pairs("en_ewt-ud-dev.conllu", 200),
                   tmp_path / "pos")
    check_pos_equal(model, [t for t, _ in pairs("en_ewt-ud-test.conllu", 400)])
