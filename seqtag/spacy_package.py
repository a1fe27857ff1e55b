"""Packaging a saved seqtag tagger as a spaCy pipeline (``seqtag spacy-package``).

The pipeline folder holds a blank spaCy tokenizer and the ``seqtag`` component with the tagger
inside it, so ``spacy.load`` opens the folder on its own. Its ``meta.json`` pins what the tagger
needs to run: the exact seqtag distribution and every plugin distribution the model records, so
the installable package built from it (:func:`build_package`, through spaCy's ``spacy package``)
pulls them in when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union, cast

from .errors import ConfigError, SeqtagError

if TYPE_CHECKING:
    from .tagger import Tagger

__all__ = ["package_pipeline", "pipeline_meta", "requirements", "performance", "build_package", "BUILD_FORMATS"]

DEFAULT_VERSION = "0.1.0"
BUILD_FORMATS = ("sdist", "wheel")


def requirements(meta: Mapping[str, Any]) -> list[str]:
    """The pins a pipeline of this model needs: this seqtag exactly, and each recorded plugin distribution.

    Args:
        meta: The model's ``meta.json``; its ``plugins`` maps distribution to version.
    """
    from .about import DISTRIBUTION, __version__

    pins = [f"{DISTRIBUTION}=={__version__}"]
    for dist, ver in sorted((meta.get("plugins") or {}).items()):
        pins.append(f"{dist}=={ver}" if ver else str(dist))
    return pins


def performance(meta: Mapping[str, Any], task: str, sets_pos: bool) -> dict[str, float]:
    """The model's test scores (dev scores when it has none) under spaCy's names, as fractions.

    NER: ``ents_f``, ``ents_p``, ``ents_r``; POS: ``tag_acc`` (and ``pos_acc`` when the component
    writes ``token.pos_``). seqtag keeps percentages; spaCy's meta keeps fractions of 1.
    """
    scores = meta.get("scores") or {}
    split = scores.get("test") or scores.get("dev") or {}
    names = ({"ents_f": "f1", "ents_p": "precision", "ents_r": "recall"} if task == "ner"
             else {"tag_acc": "accuracy", **({"pos_acc": "accuracy"} if sets_pos else {})})
    return {key: round(float(split[src]) / 100, 6) for key, src in names.items()
            if isinstance(split.get(src), (int, float))}


def pipeline_meta(tagger: "Tagger", model: Union[str, Path], name: str, version: Optional[str], sets_pos: bool,
                  extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The pipeline's ``meta.json`` entries: name, version, description, requirements, performance.

    Args:
        tagger: The loaded tagger.
        model: Its folder (named in the description).
        name: The pipeline name.
        version: The pipeline version; ``None``: the model's (``meta.json``'s ``version``), else 0.1.0.
        sets_pos: Whether the component writes ``token.pos_`` (a POS tagger of UPOS tags).
        extra: Entries merged over these (``--meta``); its ``requirements`` are added to the pins.
    """
    meta = tagger.meta
    out: dict[str, Any] = {
        "name": name, "version": version or str(meta.get("version") or DEFAULT_VERSION),
        "description": f"seqtag {tagger.task.upper()} tagger from {Path(model).name}",
        "requirements": requirements(meta), "performance": performance(meta, tagger.task, sets_pos),
    }
    extra = dict(extra or {})
    pinned = {_dist_name(r) for r in out["requirements"]}
    added = [r for r in extra.pop("requirements", None) or [] if _dist_name(str(r)) not in pinned]
    out.update(extra)
    out["requirements"] = out["requirements"] + added
    return out


def _dist_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (``Seqtag_IDCNN>=1`` -> ``seqtag-idcnn``)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        raw = Requirement(requirement).name
    except InvalidRequirement:
        raise ConfigError(f"--meta: {requirement!r} is not a requirement (e.g. 'spacy-lookups-data>=1.0')") from None
    return raw.lower().replace("_", "-").replace(".", "-")


def read_meta_file(path: Union[str, Path]) -> dict[str, Any]:
    """The JSON object of a ``--meta`` file."""
    from .jsonio import read_json_object

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--meta {p}: no such file")
    return read_json_object(p, ConfigError)


def package_pipeline(model: Union[str, Path], output: Union[str, Path], lang: str = "en",
                     name: Optional[str] = None, spans_key: Optional[str] = None, force: bool = False,
                     verify: bool = True, version: Optional[str] = None,
                     meta: Optional[Mapping[str, Any]] = None, device: Optional[str] = None) -> Path:
    """Write a spaCy pipeline folder (``spacy.load`` opens it) holding a blank ``lang`` tokenizer and the tagger.

    The tagger goes inside the folder (``OUTPUT/seqtag/``, seqtag's format), so the folder stands alone.
    Its ``meta.json`` pins this seqtag and the model's plugins (see :func:`pipeline_meta`).

    Args:
        model: The saved tagger's folder.
        output: The pipeline folder to write (new or empty, or any folder but a model with ``force``).
        lang: The spaCy language code of the tokenizer.
        name: The pipeline name (default ``seqtag_TASK``).
        spans_key: NER: write ``doc.spans[KEY]`` instead of ``doc.ents``.
        force: Write into a folder that is not empty.
        verify: Check the model's files against its manifest.
        version: The pipeline version (default: the model's, else 0.1.0).
        meta: Entries merged into the pipeline's ``meta.json``.
        device: The component's ``device`` setting in the pipeline's ``config.cfg`` (``None``: spaCy's
            device; ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``). Only its name is checked here: the
            pipeline runs elsewhere, and the device is resolved where it is loaded.
    """
    import spacy

    from .modeldir import is_model_dir
    from .spacy_component import SeqtagComponent
    from .tagger import Tagger

    out = Path(output)
    if out.exists() and (is_model_dir(out) or out.resolve() == Path(model).resolve()):
        raise ConfigError(f"{out}: a seqtag model folder; the pipeline would overwrite its files "
                          f"(--force never does), choose another OUTPUT_DIR")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(f"{out}: exists and is not an empty folder; choose another OUTPUT_DIR or pass --force")
    pipe_name = name or (meta or {}).get("name")
    if pipe_name is not None and not (isinstance(pipe_name, str) and pipe_name.replace("_", "").isalnum()):
        raise ConfigError(f"--name {pipe_name!r}: use letters, digits and underscores only")
    _check_version(version if version is not None else (meta or {}).get("version"))
    tagger = Tagger.load(model, verify=verify)
    try:
        nlp = spacy.blank(lang)
    except (ImportError, KeyError, ValueError) as exc:
        raise ConfigError(f"--lang {lang!r}: spaCy has no such language ({' '.join(str(exc).split())[:120]})") from None
    comp = cast(SeqtagComponent, nlp.add_pipe("seqtag", config={"spans_key": spans_key, "device": device}))
    comp._set_tagger(tagger, place=False)  # saved from the CPU as it was loaded
    extra = {k: v for k, v in (meta or {}).items() if k != "name"}
    nlp.meta.update(pipeline_meta(tagger, model, pipe_name or f"seqtag_{tagger.task}", version, comp._pos, extra))
    _check_version(nlp.meta["version"])
    try:
        nlp.to_disk(out)
    except OSError as exc:
        raise SeqtagError(f"{out}: cannot write the pipeline ({exc.strerror or exc})") from None
    return out


def _check_version(version: Any) -> None:
    from packaging.version import InvalidVersion, Version

    if version is None:
        return
    try:
        Version(str(version))
    except InvalidVersion:
        raise ConfigError(f"--version {version!r}: not a package version (e.g. 0.1.0)") from None


def build_package(pipeline: Union[str, Path], dist_dir: Union[str, Path],
                  formats: Sequence[str] = ("wheel",)) -> list[Path]:
    """Build an installable Python package of a pipeline folder with spaCy's ``spacy package``.

    spaCy writes the package source (``setup.py``, ``meta.json``, the pipeline) into
    ``dist_dir/LANG_NAME-VERSION/``; the archives are built from it into its ``dist/`` (the wheel with
    pip, the sdist with ``python -m build``), their output shown only when a build fails. Installing one
    pulls in the pipeline's requirements.

    Args:
        pipeline: A folder written by :func:`package_pipeline`.
        dist_dir: Where the package source and its ``dist/`` go (created).
        formats: ``sdist`` and/or ``wheel``.

    Returns:
        The built archives.
    """
    from spacy.cli.package import package

    bad = [f for f in formats if f not in BUILD_FORMATS]
    if bad or not formats:
        raise ConfigError(f"--build {','.join(formats)!r}: use sdist, wheel or sdist,wheel")
    if "sdist" in formats and importlib.util.find_spec("build") is None:
        raise SeqtagError("building an sdist of the pipeline needs the package 'build'; install it, e.g. "
                          "pip install build (or build the wheel only: --build wheel)")
    src, dist = Path(pipeline), Path(dist_dir)
    meta = json.loads((src / "meta.json").read_text(encoding="utf-8"))
    dist.mkdir(parents=True, exist_ok=True)
    try:  # spaCy reports its errors with sys.exit after printing them; silent=True keeps them quiet
        package(src, dist, create_sdist=False, create_wheel=False, force=True, silent=True)
    except SystemExit:
        raise SeqtagError(f"{src}: spaCy could not make a package of this pipeline (spacy package {src} "
                          f"{dist} says why)") from None
    name = meta["name"] if meta["name"].startswith(meta["lang"] + "_") else f"{meta['lang']}_{meta['name']}"
    root = dist / f"{name}-{meta['version']}"
    # the package's setup.py needs only setuptools: use the one here when there is one, rather than
    # fetching it into an isolated build environment (which needs the package index)
    local = importlib.util.find_spec("setuptools") is not None
    commands = {"sdist": [sys.executable, "-m", "build", "--sdist", *(["--no-isolation"] if local else []), "."],
                # pip is in every virtual environment; 'build' need not be
                "wheel": [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", "dist",
                          *(["--no-build-isolation"] if local else []), "."]}
    built: list[Path] = []
    for fmt in formats:
        (root / "dist").mkdir(exist_ok=True)
        before = set((root / "dist").glob("*"))
        res = subprocess.run(commands[fmt], cwd=root, capture_output=True, text=True)
        if res.returncode != 0:
            tail = " ".join((res.stderr or res.stdout).split())[-300:]
            raise SeqtagError(f"{root}: building the {fmt} failed: {tail}")
        built.extend(sorted(set((root / "dist").glob("*")) - before))
    return built
