"""Saved taggers on the Hugging Face hub: ``hf://owner/name[@revision]`` read into the local hub cache,
and a model folder pushed to a model repository with a generated model card.

Only plain data travels: a download asks for the JSON files and the safetensors weights
(:data:`ALLOW_PATTERNS`), never code or pickles, and the snapshot is then loaded as any local model
folder (format, plugins, SHA-256 manifest). A push uploads the model's own files (its manifest in
``meta.json``) and a ``README.md`` written by :func:`model_card`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelLoadError
from .hub import is_connection_error, offline_mode, probe_hub
from .hub import unavailable as _unavailable

__all__ = ["HF_PREFIX", "ALLOW_PATTERNS", "is_hub_ref", "parse_hub_ref", "model_path", "download_model",
           "model_card", "push_model", "distribution_name"]

HF_PREFIX = "hf://"
ALLOW_PATTERNS = ["*.json", "*.safetensors", "assets/*.json"]  # a model's plain files: no code, no pickle
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def is_hub_ref(path: Any) -> bool:
    """Whether ``path`` names a model on the hub (``hf://owner/name[@revision]``)."""
    return isinstance(path, str) and path.startswith(HF_PREFIX)


def parse_hub_ref(ref: str) -> tuple[str, str | None]:
    """``hf://owner/name[@revision]`` as ``(repo_id, revision)``; a malformed reference is a one-line error."""
    repo_id, _, revision = ref.removeprefix(HF_PREFIX).partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id or (revision == "" and "@" in ref):
        raise ModelLoadError(f"{ref}: not a hub model reference; expected hf://owner/name or hf://owner/name@revision")
    return repo_id, revision or None


def model_path(path: Any) -> Path:
    """The local folder of a model: ``path`` itself, or for ``hf://...`` its snapshot in the hub cache."""
    if is_hub_ref(path):
        return download_model(path)
    return Path(path)


def download_model(ref: str) -> Path:
    """The snapshot folder of the hub model ``ref`` (``hf://owner/name[@revision]``), downloaded if needed.

    With ``HF_HUB_OFFLINE=1``, or when the hub is out of reach (probed within seconds), the local hub
    cache is read instead; a model that is not there, a repository or revision that does not exist and
    a connection that fails are each one line of error.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hub_ref(ref)
    offline = offline_mode()
    reason = None if offline else probe_hub()
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS,
                                   local_files_only=offline or reason is not None)
    except GatedRepoError:
        raise ModelLoadError(f"{ref}: a gated repository; accept its terms on the hub and log in "
                             f"(`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{ref}: no such model repository on the hub (or a private one: log in with "
                             f"`hf auth login`)") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"{ref}: the repository has no revision {revision!r}") from None
    except (LocalEntryNotFoundError, FileNotFoundError) as exc:
        if reason is not None:
            raise _unavailable(f"the Hugging Face hub is out of reach ({reason}) and {ref} is not in the local "
                               f"hub cache; pass a local model folder, or load it once online", reason) from None
        if offline:
            raise _unavailable(f"{ref} is not in the local hub cache and HF_HUB_OFFLINE is set; download it once "
                               f"online (or unset HF_HUB_OFFLINE)", "offline and not in the local cache") from None
        raise ModelLoadError(f"{ref}: {' '.join(str(exc).split())[:200]}") from None
    except Exception as exc:
        if isinstance(exc, MemoryError) or not is_connection_error(exc):
            raise
        raise _unavailable(f"the Hugging Face hub is out of reach while downloading {ref} "
                           f"({' '.join(str(exc).split())[:160]}); HF_HUB_OFFLINE=1 reads a cached model",
                           "the connection failed") from None
    return Path(str(folder))


def distribution_name() -> str:
    """The name ``pip install`` takes for seqtag (the import name is another project's on the package index)."""
    from .about import DISTRIBUTION

    return DISTRIBUTION


def model_card(meta: Mapping[str, Any], repo_id: str, catalogue: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The ``README.md`` of a pushed model: the hub's YAML metadata block, the scores and how to use it.

    Args:
        meta: The model's ``meta.json`` (task, scheme, ``data``, ``scores``).
        repo_id: ``owner/name`` on the hub.
        catalogue: The corpora seqtag knows by name (default: seqtag's catalogue), for the dataset's hub
            id and language when the model was trained on a catalogue corpus.
    """
    if catalogue is None:
        from .data import catalogue as read_catalogue

        catalogue = read_catalogue()
    task = str(meta.get("task", "ner"))
    corpus = str((meta.get("data") or {}).get("corpus") or "")
    entry = catalogue.get(corpus, {})
    dataset = entry.get("hub") or (corpus.removeprefix("hf:").partition(":")[0]
                                   if _REPO_ID.match(corpus.removeprefix("hf:").partition(":")[0]) else "")
    task_type = "token-classification"
    task_name = "Named entity recognition" if task == "ner" else "Part-of-speech tagging"
    tags = ["seqtag", "token-classification", "ner" if task == "ner" else "pos"]
    lines = ["---", "library_name: seqtag", f"pipeline_tag: {task_type}", "tags:"]
    lines += [f"- {t}" for t in tags]
    if entry.get("language"):
        lines += ["language:", f"- {entry['language']}"]
    if dataset:
        lines += ["datasets:", f"- {dataset}"]
    metrics = _metrics(meta.get("scores") or {}, task)
    if metrics:
        lines += ["model-index:", f"- name: {json.dumps(repo_id.split('/')[-1])}", "  results:",
                  f"  - task:\n      type: {task_type}\n      name: {task_name}"]
        if dataset:
            lines.append(f"    dataset:\n      type: {dataset}\n      name: {json.dumps(corpus or dataset)}")
            if entry.get("hub_config"):
                lines.append(f"      config: {entry['hub_config']}")
        lines.append("    metrics:")
        for split, key, value in metrics:
            lines.append(f"    - type: {key}\n      value: {value}\n      name: {split} {key}")
    lines.append("---")
    dist = distribution_name()
    body = [f"# {repo_id.split('/')[-1]}", "",
            f"A seqtag {task_name.lower()} model ({meta.get('scheme', 'IOB2')} tags)"
            + (f", trained on `{corpus}`." if corpus else "."), ""]
    if metrics:
        body += ["| split | metric | value |", "|---|---|---|"] + [f"| {s} | {k} | {v} |" for s, k, v in metrics] + [""]
    body += ["## Usage", "", "```bash", f"pip install {dist}", f"seqtag predict hf://{repo_id} input.txt", "```", "",
             "```python", "import seqtag", "", f'tagger = seqtag.load("hf://{repo_id}")',
             'print(tagger.predict([["Peter", "lives", "in", "Berlin"]]))', "```", "",
             f"The model is plain data (JSON and safetensors, checked against the SHA-256 manifest in "
             f"`meta.json` when loaded); it was written by seqtag {meta.get('seqtag_version', '?')}.", ""]
    return "\n".join(lines + [""] + body)


def _metrics(scores: Mapping[str, Any], task: str) -> list[tuple[str, str, float]]:
    """``(split, metric, value)`` for each split's scores in ``meta.json`` (``dev``, ``test``)."""
    keys = ("f1", "precision", "recall") if task == "ner" else ("accuracy",)
    out = []
    for split in ("dev", "test"):
        found = scores.get(split)
        if isinstance(found, Mapping):
            out += [(split, k, float(found[k])) for k in keys if isinstance(found.get(k), (int, float))]
    return out


def push_model(model_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
               commit_message: str | None = None) -> str:
    """Upload the model in ``model_dir`` to the hub repository ``repo_id`` (created if needed); returns its URL.

    Only the model's own files travel (the manifest in ``meta.json``, see
    :func:`seqtag.modeldir.owned_files`), with a generated ``README.md``; the model is read and checked
    first, and the hub is probed, so an unreachable hub is one line within seconds.
    """
    from huggingface_hub import HfApi

    from .modeldir import owned_files, read_model_dir

    if not _REPO_ID.match(repo_id):
        raise ModelLoadError(f"{repo_id}: not a hub repository id; expected owner/name")
    src = Path(model_dir)
    saved = read_model_dir(src, weights=False)  # a damaged or edited model is refused before anything is sent
    reason = probe_hub()
    if reason is not None:
        raise _unavailable(f"the Hugging Face hub is out of reach ({reason}), so {src} cannot be pushed to "
                           f"{repo_id}; try again when the hub can be reached", reason)
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="seqtag-push-") as tmp:
        for rel in owned_files(src):
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, Path(tmp) / rel)
        (Path(tmp) / "README.md").write_text(model_card(saved.meta, repo_id), encoding="utf-8")
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=tmp, revision=revision,
                              commit_message=commit_message or f"Upload seqtag {saved.task} model")
        except Exception as exc:
            if isinstance(exc, MemoryError):
                raise
            first = " ".join(str(exc).split())[:200]
            if is_connection_error(exc):
                raise _unavailable(f"the Hugging Face hub is out of reach while pushing to {repo_id} ({first})",
                                   "the connection failed") from None
            raise ModelLoadError(f"{repo_id}: the hub refused the push ({type(exc).__name__}: {first}); "
                                 f"log in with `hf auth login` (a token with write access)") from None
    return str(url)
