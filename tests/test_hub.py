"""The Hugging Face hub, offline: datasets read from the ``datasets`` cache, models read from the hub cache
(``hf://owner/name``), the model card a push writes, and an unreachable hub as one line within seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from seqtag.errors import HubUnavailableError, ModelLoadError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DEAD = "https://127.0.0.1:9"  # nothing listens on the discard port: the probe is refused at once
SENTS = [(["Peter", "Blackburn", "visits", "Oslo", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
         (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
         (["Anna", "lives", "in", "Rome", "."], ["B-PER", "O", "O", "B-LOC", "O"])] * 4


def cache_a_hub_dataset(cache: Path, repo_id: str) -> None:
    """Store a dataset in a ``datasets`` cache the way ``load_dataset(repo_id)`` leaves a hub dataset:
    ``owner___name/default/0.0.0/<commit>/`` with ``dataset_info.json`` and ``name-<split>.arrow``."""
    import datasets
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    names = sorted({t for _, tags in SENTS for t in tags})
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    src = cache / "src"
    src.mkdir(parents=True)
    name = repo_id.split("/")[1]
    files = {}
    for split in ("train", "validation"):
        ds = datasets.Dataset.from_dict({"tokens": [t for t, _ in SENTS],
                                         "ner_tags": [[names.index(x) for x in tags] for _, tags in SENTS]},
                                        features=feats)
        ds.to_parquet(str(src / f"{split}.parquet"))
        files[split] = [str(src / f"{split}.parquet")]
    builder = Parquet(cache_dir=str(cache / "build"), dataset_name=name, features=feats,
                      data_files=DataFilesDict.from_patterns(files))
    builder.download_and_prepare()
    dest = cache / repo_id.replace("/", "___") / "default" / "0.0.0" / COMMIT
    dest.mkdir(parents=True)
    for split in files:
        shutil.copy(Path(builder.cache_dir) / f"{name}-{split}.arrow", dest)
    info = json.loads((Path(builder.cache_dir) / "dataset_info.json").read_text())
    info["config_name"] = "default"
    (dest / "dataset_info.json").write_text(json.dumps(info))
    shutil.rmtree(cache / "build")


def lay_into_hub_cache(model: Path, cache: Path, repo_id: str) -> Path:
    """Store ``model`` in a hub cache as ``snapshot_download`` does: ``models--owner--name/refs/main``
    holds the commit, ``snapshots/<commit>/`` the files."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    shutil.copytree(model, snap, ignore=shutil.ignore_patterns(".seqtag.lock", "checkpoint"))
    return snap


def run_cli(args: list[str], **env: str) -> tuple[subprocess.CompletedProcess, float]:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", *args], env=full, capture_output=True, text=True,
                         timeout=120)
    return res, time.monotonic() - t


# -- datasets from the cache --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("hf-datasets")
    cache_a_hub_dataset(cache, "someowner/cachedset")
    return cache


def test_the_cache_is_what_datasets_itself_reads(datasets_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from seqtag.hub import cache_only

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(datasets_cache))
    with cache_only():
        dd = datasets.load_dataset("someowner/cachedset")
    assert set(dd) == {"train", "validation"} and dd["train"][0]["tokens"][0] == "Peter"


def test_a_cached_hub_dataset_loads_offline_and_when_the_hub_is_out_of_reach(
        datasets_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    from seqtag import data

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(datasets_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corpus = data.load_corpus("someowner/cachedset", "ner")
    assert corpus.has_split("dev") and len(corpus.split("train")) == len(SENTS)
    # online, with the hub out of reach: the cached copy is used, and a warning says so
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(data, "probe_hub", lambda: "the name huggingface.co does not resolve (DNS)")
    t = time.monotonic()
    corpus = data.load_corpus("someowner/cachedset", "ner")
    assert len(corpus.split("train")) == len(SENTS) and time.monotonic() - t < 5
    assert "out of reach (the name huggingface.co does not resolve (DNS)); dataset 'someowner/cachedset' is read " \
           "from the local cache" in capsys.readouterr().err
    with pytest.raises(HubUnavailableError) as err:  # not cached: the one line, with the hint
        data.load_corpus("someowner/notcached", "ner")
    assert err.value.one_line().startswith("the Hugging Face hub is out of reach (the name huggingface.co")
    assert err.value.one_line().endswith("HF_HUB_OFFLINE=1 for a cached copy")


def test_seqtag_train_reads_a_cached_hub_dataset_offline(datasets_cache: Path, tmp_path: Path) -> None:
    res, _ = run_cli(["train", "--dataset", "someowner/cachedset", "-o", str(tmp_path / "m"), "--no-progress",
                      "--max-epochs", "1", "--set", "model.encoder.hidden_size=8",
                      "--set", "model.embedding.parts=[{type='word.v1', dim=8}]"],
                     HF_DATASETS_CACHE=str(datasets_cache), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["data"]["corpus"] == "someowner/cachedset"


def test_the_catalogue_names_a_loadable_copy() -> None:
    """A revision in the catalogue is the hub's Parquet export (docs/data.md says which ids need it)."""
    from seqtag.data import PARQUET_EXPORT, catalogue

    for name, entry in catalogue().items():
        assert entry.get("hub_revision", PARQUET_EXPORT) == PARQUET_EXPORT, name
        assert entry.get("language"), name


def test_the_hub_copy_of_conll2003_is_read_as_iob2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the files, conll2003 comes from its hub copy, whose tags are IOB2 (the files' are IOB1):
    read as IOB1, every entity's B- would be an invalid tag to repair."""
    from seqtag import data
    from seqtag.readers import Sentence

    def fake_hub(name: str, config: str | None, tag_key: str | None, revision: str | None = None) -> object:
        found = data._Found()
        for split in ("train", "validation", "test"):
            found.add(split, [Sentence(list(t), list(g), k + 1) for k, (t, g) in enumerate(SENTS)], f"{name}[{split}]")
        return found

    monkeypatch.setenv("SEQTAG_CORPORA", str(tmp_path))  # no files there
    monkeypatch.setattr(data, "_load_hub", fake_hub)
    warnings: list[str] = []
    corpus = data.load_corpus("conll2003", "ner", warn=warnings.append)
    assert corpus.scheme == "IOB2" and warnings == []
    assert corpus.sentences("train", "IOB2")[0][1] == ["B-PER", "I-PER", "O", "B-LOC", "O"]


# -- models from the hub cache ------------------------------------------------------------------------


@pytest.fixture()
def hub_cache(ner_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    lay_into_hub_cache(ner_model, cache, "someowner/tiny-ner")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read once at import, as HF_HUB_CACHE
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_load_a_model_from_the_hub_cache(hub_cache: Path, ner_model: Path) -> None:
    import seqtag

    sents = [s for s, _ in SENTS[:3]]
    got = seqtag.load("hf://someowner/tiny-ner").predict(sents)
    assert [p.tags for p in got] == [p.tags for p in seqtag.load(ner_model).predict(sents)]
    assert seqtag.load(f"hf://someowner/tiny-ner@{COMMIT}").labels == seqtag.load(ner_model).labels


def test_a_changed_file_in_the_hub_cache_is_refused(hub_cache: Path) -> None:
    import seqtag

    labels = hub_cache / "models--someowner--tiny-ner" / "snapshots" / COMMIT / "labels.json"
    labels.write_text(labels.read_text().replace("B-LOC", "B-XXX"))
    with pytest.raises(ModelLoadError, match="labels.json: changed since the model was saved"):
        seqtag.load("hf://someowner/tiny-ner")


def test_hub_model_errors_are_one_line(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqtag
    from seqtag import hub

    with pytest.raises(HubUnavailableError, match="hf://someowner/absent is not in the local hub cache and "
                                                  "HF_HUB_OFFLINE is set"):
        seqtag.load("hf://someowner/absent")
    with pytest.raises(ModelLoadError, match="not a hub model reference"):
        seqtag.load("hf://no-owner")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(hub, "hub_endpoint", lambda: DEAD)
    t = time.monotonic()
    assert seqtag.load("hf://someowner/tiny-ner").task == "ner"  # out of reach: the cached copy
    with pytest.raises(HubUnavailableError) as err:
        seqtag.load("hf://someowner/absent")
    assert time.monotonic() - t < 8
    assert err.value.one_line().startswith("the Hugging Face hub is out of reach (127.0.0.1:9 refused the "
                                           "connection) and hf://someowner/absent is not in the local hub cache")


def test_seqtag_predict_reads_a_hub_model(hub_cache: Path, tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("Peter Blackburn visits Oslo .\n")
    res, _ = run_cli(["predict", "hf://someowner/tiny-ner", str(text), "--output-format", "jsonl"],
                     HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[0])["tokens"] == ["Peter", "Blackburn", "visits", "Oslo", "."]
    res, _ = run_cli(["predict", "hf://someowner/absent", str(text)], HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not in the local hub cache" in res.stderr


# -- pushing ------------------------------------------------------------------------------------------


def test_the_model_card(ner_model: Path) -> None:
    from seqtag.hub_models import distribution_name, model_card

    meta: dict[str, Any] = json.loads((ner_model / "meta.json").read_text())
    meta["data"] = {"corpus": "conll2003"}
    meta["scores"] = {"dev": {"f1": 91.5, "precision": 91.0, "recall": 92.0}, "test": {"f1": 88.25}}
    card = model_card(meta, "someowner/tiny-ner")
    head, _, body = card.removeprefix("---\n").partition("\n---\n")
    import yaml

    block = yaml.safe_load(head)
    assert block["library_name"] == "seqtag" and block["pipeline_tag"] == "token-classification"
    assert "ner" in block["tags"] and block["language"] == ["en"] and block["datasets"] == ["eriktks/conll2003"]
    (result,) = block["model-index"][0]["results"]
    assert result["task"]["type"] == "token-classification" and result["dataset"]["type"] == "eriktks/conll2003"
    assert {(m["name"], m["value"]) for m in result["metrics"]} == {
        ("dev f1", 91.5), ("dev precision", 91.0), ("dev recall", 92.0), ("test f1", 88.25)}
    assert distribution_name() == "pyseqtag" and "pip install pyseqtag" in body and 'seqtag.load("hf://someowner/tiny-ner")' in body
    # a local corpus names no dataset; a POS model's metric is accuracy
    meta.update(task="pos", data={"corpus": "/data/mine"}, scores={"dev": {"accuracy": 97.1}})
    block = yaml.safe_load(model_card(meta, "o/p").removeprefix("---\n").partition("\n---\n")[0])
    assert "datasets" not in block and "language" not in block
    assert block["model-index"][0]["results"][0]["metrics"][0]["type"] == "accuracy"


def test_push_without_network_is_one_line_within_seconds(ner_model: Path, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    from seqtag import hub
    from seqtag.hub_models import push_model

    monkeypatch.setattr(hub, "hub_endpoint", lambda: DEAD)
    t = time.monotonic()
    with pytest.raises(HubUnavailableError) as err:
        push_model(ner_model, "someowner/tiny-ner")
    assert time.monotonic() - t < 5
    assert err.value.one_line().startswith("the Hugging Face hub is out of reach (127.0.0.1:9 refused")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "push", str(ner_model), "someowner/tiny-ner"],
                         env={**env, "HF_ENDPOINT": DEAD, "HF_HUB_OFFLINE": "0"}, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "out of reach" in res.stderr, res.stderr
