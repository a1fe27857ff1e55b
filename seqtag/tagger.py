"""A trained tagger: predict on texts or token lists, save to and load from a model folder.

The folder's format (``config.json``, ``meta.json``, ``labels.json``, ``model.safetensors``,
``assets/``; no pickle anywhere) is :mod:`seqtag.modeldir`'s; the prediction loop around the network
is :mod:`seqtag.inference`'s, shared with the ONNX runtime.

Weights are read on the CPU and the network is then moved to the device asked for
(``load(path, device="cuda")``, :meth:`Tagger.to`; see :mod:`seqtag.devices`); predictions come back
as Python lists wherever it runs. Saving always writes float32 tensors from the CPU, so a tagger saved
on one device (or in another precision) loads on any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .devices import resolve_device
from .errors import ModelLoadError, SeqtagError
from .hub_models import model_path
from .inference import Entity, PredictingTagger, Prediction, Predictor, RunBatch, confidence_rows, limit_kernel_cache
from .model import TaggerModel, make_batch, model_device
from .modeldir import CONFIG, WEIGHTS, SavedModel, read_model_dir, write_model_dir

__all__ = ["Tagger", "Prediction", "Entity", "load"]


class Tagger(PredictingTagger):
    """A part-of-speech tagger or named-entity recogniser.

    Args:
        config: The full config (``task``, ``scheme``, ``model``, ...), defaults filled in.
        labels: Tag labels in the scheme the model was trained on.
        model: The network (on any device: the tagger predicts where it is).
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
        self.predictor = Predictor.from_config(config, labels, reads_context=True)
        self.model.eval()

    def run_batch(self, with_confidence: bool) -> RunBatch:
        """The network as the predictor's ``run_batch``: token lists to tag-id rows and confidence rows."""
        def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]] | None]:
            with torch.inference_mode():  # make_batch puts the batch on the network's device
                tags, conf = self.model.decode(make_batch(self.model, words), with_confidence=with_confidence)
            # back on the CPU as Python lists (one copy each from an accelerator); shapes: (batch, seq)
            return tags.cpu().tolist(), (confidence_rows(conf.float().cpu()) if with_confidence else None)

        return run

    # -- the device -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device the network is on (and predicts on)."""
        return model_device(self.model)

    def to(self, device: str | torch.device | None) -> "Tagger":
        """Move the network to ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``; ``None``: the
        CPU); returns the tagger.

        Raises:
            DeviceError: An unknown name, or a device that is not there (one line).
        """
        self.model.to(resolve_device(device))
        return self

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
        """Write the tagger to the directory ``path`` atomically (old contents replaced only when complete).

        The weights are written from the CPU, floating-point ones as float32, whatever the network's
        device and dtype: the folder loads on any device."""
        state = {k: _portable(v) for k, v in self.model.state_dict().items()}
        saved = SavedModel(self.config, self.labels, self.scheme, self.meta, self.model.get_assets(), state)
        self.meta = write_model_dir(path, saved, scores)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True, device: str | torch.device | None = None) -> "Tagger":
        """Load a saved tagger: checks the format version and the plugins first, reads each file (JSON,
        safetensors), checks them against the SHA-256 manifest in ``meta.json`` (unless ``verify`` is
        false), and only then builds the model and loads its weights strictly.

        The weights are read on the CPU and the network is then moved to ``device`` (``cpu``, ``cuda``,
        ``cuda:N``, ``mps``, ``auto``; ``None``: the CPU), which is checked before any file is read.
        Where ``$SEQTAG_THREADS`` is set and nothing in this process has chosen torch's thread count yet,
        the first load sets it (:func:`seqtag.threads.follow_environment`).

        Raises:
            ConfigError: ``$SEQTAG_THREADS`` is not a count or ``auto`` (one line).
            DeviceError: ``device`` is unknown or not there (one line).
            ModelLoadError: The folder cannot be loaded (one line naming the file).
        """
        from .threads import follow_environment

        target = resolve_device(device)
        follow_environment()  # $SEQTAG_THREADS holds for prediction from Python as for commands
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
        if target.type != "cpu":
            model.to(target)
        return cls(saved.config, saved.labels, model, saved.meta)


def _portable(tensor: torch.Tensor) -> torch.Tensor:
    """A weight as it is saved: on the CPU, contiguous, float32 if it is floating-point (fp16, bf16, fp64)."""
    t = tensor.detach()
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t.cpu().contiguous()


def load(path: str | Path, verify: bool = True, device: str | torch.device | None = None) -> Tagger:
    """Load a saved tagger from a directory (``verify``: check its files against the SHA-256 manifest;
    ``device``: where the network runs, see :meth:`Tagger.load`)."""
    return Tagger.load(path, verify=verify, device=device)
