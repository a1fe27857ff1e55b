"""A trained tagger: predict on texts or token lists, save to and load from a model folder.

The folder's format (``config.json``, ``meta.json``, ``labels.json``, ``model.safetensors``,
``assets/``; no pickle anywhere) is :mod:`seqtag.modeldir`'s; the prediction loop around the network
is :mod:`seqtag.inference`'s, shared with the ONNX runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ModelLoadError, SeqtagError
from .hub_models import model_path
from .inference import Entity, PredictingTagger, Prediction, Predictor, RunBatch, limit_kernel_cache
from .model import TaggerModel, make_batch
from .modeldir import CONFIG, WEIGHTS, SavedModel, read_model_dir, write_model_dir

__all__ = ["Tagger", "Prediction", "Entity", "load"]


class Tagger(PredictingTagger):
    """A part-of-speech tagger or named-entity recogniser.

    Args:
        config: The full config (``task``, ``scheme``, ``model``, ...), defaults filled in.
        labels: Tag labels in the scheme the model was trained on.
        model: The network.
        meta: Metadata written to ``meta.json``.

    Attributes:
        summary: The training run's summary (``dev``, ``test``, ``best_epoch``, ``history``...) when the
            tagger comes from :func:`seqtag.train`; ``None`` for a loaded one (its ``scores`` stay).
    """

    summary: dict[str, Any] | None = None

    def __init__(self, config: dict[str, Any], labels: list[str], model: TaggerModel,
                 meta: dict[str, Any] | None = None) -> None:
        # before the network first runs in this process (loading, or training, which makes its tagger
        # before the first step): oneDNN reads the cap when it compiles its first kernel
        limit_kernel_cache()
        self.config, self.labels, self.model = config, labels, model
        self.meta = dict(meta or {})
        self.predictor = Predictor.from_config(config, labels)
        self.model.eval()

    def run_batch(self, with_confidence: bool) -> RunBatch:
        """The network as the predictor's ``run_batch``: token lists to tag-id rows and confidence rows."""
        def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]] | None]:
            with torch.inference_mode():
                tags, conf = self.model.decode(make_batch(self.model, words), with_confidence=with_confidence)
            return tags.tolist(), (conf.tolist() if with_confidence else None)  # shapes: (batch, seq)

        return run

    @property
    def scores(self) -> dict[str, Any]:
        """The scores saved with the model (``meta.json``'s ``scores``: ``dev``, ``test``, ``epoch``...)."""
        return dict(self.meta.get("scores") or {})

    def evaluate(self, data: Any = None, split: str = "test", *, tag_column: str | None = None,
                 scheme: str | None = None, batch_size: int = 256) -> dict[str, Any]:
        """Score the tagger on a split of ``data``, as ``seqtag evaluate`` does (the same code).

        Args:
            data: A ``datasets`` ``Dataset``, ``DatasetDict`` or ``IterableDataset``, a list of
                ``(tokens, tags)`` pairs, or what ``--dataset`` takes (a path, a catalogue name, a hub id);
                ``None``: the corpus the tagger was trained on.
            split: The split to score; a single dataset or file is every split.

        Returns:
            NER: ``f1``, ``precision``, ``recall`` (percent, seqeval's), ``strict``, ``per_type``,
            ``breakdown``; POS: ``accuracy``, ``confusions``...; with ``split``, ``dataset``, ``sentences``.
        """
        from .workflow import evaluate_tagger

        return evaluate_tagger(self, data, split, tag_column=tag_column, scheme=scheme, batch_size=batch_size)

    # -- saving -----------------------------------------------------------------------------------
    def save(self, path: str | Path, scores: Mapping[str, Any] | None = None) -> None:
        """Write the tagger to the directory ``path`` atomically (old contents replaced only when complete)."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}
        saved = SavedModel(self.config, self.labels, self.scheme, self.meta, self.model.get_assets(), state)
        self.meta = write_model_dir(path, saved, scores)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Tagger":
        """Load a saved tagger: checks the format version and the plugins first, reads each file (JSON,
        safetensors), checks them against the SHA-256 manifest in ``meta.json`` (unless ``verify`` is
        false), and only then builds the model and loads its weights strictly."""
        p = model_path(path)  # hf://owner/name[@revision]: its snapshot in the local hub cache
        saved = read_model_dir(p, verify=verify)
        try:
            model = TaggerModel(saved.config["model"], saved.labels, saved.scheme, assets=saved.assets)
        except SeqtagError as exc:
            raise ModelLoadError(f"{p / CONFIG}: {exc}") from None
        try:
            model.load_state_dict(saved.state or {}, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(" ".join(first[:3]).split())[:300]
            raise ModelLoadError(f"{p / WEIGHTS}: weights do not match the config: {detail}") from None
        return cls(saved.config, saved.labels, model, saved.meta)


def load(path: str | Path, verify: bool = True) -> Tagger:
    """Load a saved tagger from a directory (``verify``: check its files against the SHA-256 manifest)."""
    return Tagger.load(path, verify=verify)
