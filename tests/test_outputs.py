"""A user's files are never destroyed: output folders, model files, the SHA-256 manifest, commit crashes.

Each refusal is the catalogue's one ``error:`` line with exit status 2, and the files it is about are
byte-identical afterwards (docs/reliability.md, "Your files").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

import seqtag
from seqtag.atomic import STAGING_DIR, commit_files
from seqtag.errors import ModelLoadError

from .test_bad_input import NER, TINY, fails, run


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks followed at the top) with its SHA-256, and the folder's mode."""
    out = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(folder.rglob("*")) if p.is_file()}
    out["<mode>"] = oct(stat.S_IMODE(folder.stat().st_mode))
    return out


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    return cfg


def train_args(cfg: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--config", cfg, "--dataset", NER, "-o", out, "--no-progress", *extra]


@pytest.fixture()
def user_folder(tmp_path: Path) -> Path:
    """A folder of the user's own files, named like a model's, mode 755."""
    d = tmp_path / "mine"
    (d / "assets").mkdir(parents=True)
    (d / "checkpoint").mkdir()
    (d / "config.json").write_text('{"my": "settings"}')
    (d / "labels.json").write_text("[1, 2]")
    (d / "assets" / "notes.txt").write_text("keep me")
    (d / "checkpoint" / "run.txt").write_text("mine too")
    d.chmod(0o755)
    return d


def test_training_into_a_folder_of_other_files_is_refused_and_touches_nothing(config: Path,
                                                                            user_folder: Path) -> None:
    before = snapshot(user_folder)
    fails(train_args(config, user_folder), f"{user_folder}: a folder with other files in it", "--force")
    assert snapshot(user_folder) == before


def test_force_writes_the_model_through_keeping_the_mode_and_the_other_files(config: Path,
                                                                           user_folder: Path) -> None:
    res = run(train_args(config, user_folder, "--force"))
    assert res.exit_code == 0, res.output
    after = snapshot(user_folder)
    assert after["<mode>"] == "0o755"
    assert (user_folder / "assets" / "notes.txt").read_text() == "keep me"
    assert seqtag.load(user_folder).predict([["EU", "rejects"]])[0].tags


def test_an_existing_model_needs_overwrite_and_a_symlinked_folder_is_written_through(
        config: Path, ner_model: Path, tmp_path: Path) -> None:
    target = tmp_path / "real"
    shutil.copytree(ner_model, target)
    (target / "README.txt").write_text("about this model")
    meta = json.loads((target / "meta.json").read_text())
    meta.setdefault("scores", {})["test"] = {"f1": 85.71, "precision": 86.0, "recall": 85.42}
    (target / "meta.json").write_text(json.dumps(meta))
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    before = snapshot(target)
    fails(train_args(config, link), f"{link}: holds a seqtag NER model (test F1 85.71)", "--overwrite", "--resume")
    assert snapshot(target) == before
    res = run(train_args(config, link, "--overwrite"))
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (target / "README.txt").read_text() == "about this model"
    assert snapshot(target)["model.safetensors"] != before["model.safetensors"]
    assert not [p for p in target.iterdir() if p.name.startswith(".") and p.name != ".seqtag.lock"]
    seqtag.load(link)


def test_an_unwritable_output_is_refused_before_training(config: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    fails(train_args(config, blocker / "model"), f"{blocker / 'model'}: cannot create the output folder")
    fails(train_args(config, blocker), f"Directory {str(blocker)!r} is a file")


def test_export_and_spacy_package_never_write_over_the_model_files(ner_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(ner_model, model)
    before = snapshot(model)
    for name in ("model.safetensors", "meta.json", "assets/embedding.json", "checkpoint/state.safetensors"):
        fails(["export", model, "-o", model / name], f"{model / name}: a file of the model in")
    fails(["spacy-package", model, model, "--force"], f"{model}: a seqtag model folder", "--force never does")
    other = tmp_path / "other"
    shutil.copytree(ner_model, other)
    fails(["spacy-package", model, other, "--force"], f"{other}: a seqtag model folder")
    assert snapshot(model) == before


def _copy(ner_model: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(ner_model, model)
    return model


def test_a_changed_label_file_is_refused_unless_no_verify(ner_model: Path, tmp_path: Path) -> None:
    model = _copy(ner_model, tmp_path)
    data = json.loads((model / "labels.json").read_text())
    i, j = data["labels"].index("B-PER"), data["labels"].index("B-LOC")
    data["labels"][i], data["labels"][j] = data["labels"][j], data["labels"][i]  # two labels swapped
    (model / "labels.json").write_text(json.dumps(data))
    expected = f"{model / 'labels.json'}: changed since the model was saved"
    fails(["predict", model], expected, "--no-verify", input="Peter lives in Paris\n")
    fails(["evaluate", model, "--dataset", NER], expected)
    with pytest.raises(ModelLoadError, match="changed since the model was saved"):
        seqtag.load(model)
    assert seqtag.load(model, verify=False).labels[i] == "B-LOC"
    res = run(["evaluate", model, "--dataset", NER, "--no-verify", "--json"])
    assert res.exit_code == 0, res.output
    res = run(["predict", model, "--no-verify", "--input-format", "text"], input="Peter lives in Paris\n")
    assert res.exit_code == 0 and json.loads(res.stdout)["tokens"] == ["Peter", "lives", "in", "Paris"]


def test_a_changed_config_or_weights_file_is_refused(ner_model: Path, tmp_path: Path) -> None:
    model = _copy(ner_model, tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["scheme"] = "IOB2"
    (model / "config.json").write_text(json.dumps(cfg, indent=2))
    with pytest.raises(ModelLoadError, match="config.json: changed since"):
        seqtag.load(model)
    model2 = _copy(ner_model, tmp_path / "b")
    raw = bytearray((model2 / "model.safetensors").read_bytes())
    raw[-1] ^= 1
    (model2 / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match="model.safetensors: changed since"):
        seqtag.load(model2)


def test_a_model_saved_without_a_manifest_still_loads(ner_model: Path, tmp_path: Path) -> None:
    model = _copy(ner_model, tmp_path)
    meta = json.loads((model / "meta.json").read_text())
    assert set(meta["files"]) == {"config.json", "labels.json", "model.safetensors", "assets/embedding.json"}
    del meta["files"]
    (model / "meta.json").write_text(json.dumps(meta))
    assert seqtag.load(model).predict([["EU", "rejects", "German", "call"]])[0].tags == \
        seqtag.load(ner_model).predict([["EU", "rejects", "German", "call"]])[0].tags


def test_a_commit_cut_short_is_finished_or_dropped(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("old a")
    (d / "b.txt").write_text("old b")

    def fill(stage: Path) -> None:
        (stage / "a.txt").write_text("new a")
        (stage / "b.txt").write_text("new b")

    # a crash before the commit record: the old files stay, the staging folder goes at the next commit
    (d / STAGING_DIR).mkdir()
    (d / STAGING_DIR / "a.txt").write_text("half")
    from seqtag.atomic import recover_staged

    recover_staged(d)
    assert (d / "a.txt").read_text() == "old a" and not (d / STAGING_DIR).exists()
    # a crash after the record, with one file moved: recovery moves the other and removes the obsolete
    (d / STAGING_DIR).mkdir()
    (d / STAGING_DIR / "b.txt").write_text("new b")
    (d / "a.txt").write_text("new a")
    (d / "c.txt").write_text("obsolete")
    (d / STAGING_DIR / ".commit.json").write_text(json.dumps({"files": ["a.txt", "b.txt"], "remove": ["c.txt"]}))
    recover_staged(d)
    assert [(p.name, p.read_text()) for p in sorted(d.iterdir())] == [("a.txt", "new a"), ("b.txt", "new b")]
    # and a whole commit
    assert commit_files(d, fill, obsolete=lambda: ["b.txt"], last="a.txt") == ["b.txt", "a.txt"]
    assert (d / "a.txt").read_text() == "new a" and not (d / STAGING_DIR).exists()


def test_a_dev_or_test_label_absent_from_training_is_refused_by_train_as_by_evaluate(config: Path,
                                                                                  tmp_path: Path) -> None:
    data = tmp_path / "corpus"
    shutil.copytree(NER, data)
    test = data / "test.conll"
    lines = test.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip())
    cols = lines[first].split()
    cols[-1] = "B-PERSON"
    lines[first] = " ".join(cols)
    test.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    fails(["train", "--config", config, "--dataset", data, "-o", out, "--no-progress"],
          f"{test}:{first + 1}: the entity type 'PERSON' (B-PERSON) is not among the training split's types")
    assert not out.exists() or not any(p.name != ".seqtag.lock" for p in out.iterdir())


def test_unknown_or_conflicting_tasks_are_refused(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    fails(train_args(config, out, "--set", "task=xyz"), "unknown task 'xyz'")
    fails(train_args(config, out, "--task", "pos"), "the config's task 'ner' is not the task trained ('pos')")
    fails(train_args(config, out, "--max-epochs", "-3"), "'--max-epochs': -3 is not in the range x>=1")
    fails(train_args(config, out, "--set", "training.max_epochs=0"), "[training] max_epochs must be at least 1")
    assert not out.exists()


def test_a_model_whose_config_names_an_unknown_task_is_refused(ner_model: Path, tmp_path: Path) -> None:
    model = _copy(ner_model, tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["task"] = "xyz"
    (model / "config.json").write_text(json.dumps(cfg))
    fails(["evaluate", model, "--no-verify", "--dataset", NER], "config.json: unknown task 'xyz'")
    fails(["predict", model, "--no-verify"], "config.json: unknown task 'xyz'", input="a b\n")


def test_the_lock_file_is_the_only_thing_added_to_a_refused_or_finished_output(config: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    res = run(train_args(config, out))
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [".seqtag.lock", "assets", "checkpoint", "config.json", "history.jsonl", "labels.json",
                     "meta.json", "model.safetensors"], names
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_loading_finishes_a_save_that_a_crash_cut_short(ner_model: Path, tmp_path: Path) -> None:
    """kill -9 after the commit record, with the weights moved in but not meta.json: the next load
    finishes the move (no run holds the folder), and the model loads whole."""
    model = _copy(ner_model, tmp_path)
    stage = model / STAGING_DIR
    stage.mkdir()
    shutil.copy(model / "meta.json", stage / "meta.json")
    meta = json.loads((model / "meta.json").read_text())
    meta["scores"] = {"dev": {"f1": 0.5}}
    (stage / "meta.json").write_text(json.dumps(meta))
    (stage / ".commit.json").write_text(json.dumps({"files": ["meta.json"], "remove": []}))
    assert seqtag.load(model).meta["scores"] == {"dev": {"f1": 0.5}}
    assert not stage.exists()


def test_a_model_config_nested_100k_levels_deep_is_one_line(ner_model: Path, tmp_path: Path) -> None:
    model = _copy(ner_model, tmp_path)
    (model / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    fails(["predict", model], f"{model / 'config.json'}: JSON nested too deeply to read", input="a b\n")
