"""Training the spaCy component in spaCy's own loop (``spacy train``): gold tags from Examples, a new
tagger built from them, and the update step with a torch optimizer.

spaCy hands a component its gold data as :class:`spacy.training.Example` pairs and a thinc optimizer,
which cannot step torch parameters; a :class:`SpacyTrainer` therefore owns a torch optimizer built from
the seqtag config's ``[training]`` table, accumulates gradients in :meth:`SpacyTrainer.backward`
(``update``) and steps in :meth:`SpacyTrainer.step` (``finish_update``), as spaCy's own components do.

The tagger is trained on the tokens it will tag: the predicted doc's tokens (spaCy's tokenizer), minus
whitespace tokens, cut into the pieces the component tags (see ``SeqtagComponent._segments``).

It trains on the component's ``device`` (spaCy's by default, so ``spacy train --gpu-id 0`` trains on the
GPU): the component moves a new tagger there before its optimizer is built, and each batch goes where
the network is. The seqtag config's ``training.device`` is not read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from .errors import DataError, TrainingDivergedError
from .labels import convert

if TYPE_CHECKING:
    import torch
    from spacy.tokens import Doc
    from spacy.training import Example

    from .tagger import Tagger

__all__ = ["SpacyTrainer", "gold_sentences", "new_tagger", "seqtag_config"]

_BILUO_TO_BIOES = {"B": "B", "I": "I", "L": "E", "U": "S", "O": "O"}
Segments = Callable[["Doc"], list[list[int]]]
Sentence = tuple[list[str], list[str]]


def seqtag_config(task: str, config: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The complete seqtag config of a new tagger: the task's defaults under ``config``.

    Args:
        task: ``"ner"`` or ``"pos"``.
        config: A seqtag config as a table (the component's ``seqtag_config``), the path of a TOML or
            JSON config file, or ``None`` for the task's defaults.
    """
    from .config import build_config, load_config

    user = load_config(Path(config)) if isinstance(config, str) else dict(config or {})
    return build_config(task, user)


def _ner_tags(example: "Example", scheme: str) -> list[str] | None:
    """The reference entities over the predicted tokens in ``scheme``; ``None`` when the reference has none.

    spaCy aligns them as BILUO tags, ``None`` on a token with no one-to-one alignment and ``"-"`` where
    the reference leaves the token unannotated; both are taken as outside an entity, and an entity
    broken by them is repaired by the scheme conversion (it keeps its aligned tokens).
    """
    if not example.reference.has_annotation("ENT_IOB"):
        return None
    biluo = example.get_aligned_ner()
    bioes = ["O" if t in (None, "-", "", "O") else f"{_BILUO_TO_BIOES[t[0]]}{t[1:]}" for t in biluo]
    return convert(bioes, "BIOES", scheme)


def _pos_tags(example: "Example", attr: str) -> list[str] | None:
    """The reference ``token.tag_``/``pos_`` over the predicted tokens; ``None`` when one is missing or
    not aligned one to one (a sentence needs a tag on every token)."""
    name = attr.upper()
    if not example.reference.has_annotation(name):
        return None
    tags = example.get_aligned(name, as_string=True)
    return None if any(not t for t in tags) else list(tags)


def gold_sentences(examples: Iterable["Example"], task: str, scheme: str, pos_attr: str,
                   segments: Segments) -> list[Sentence]:
    """Token lists and gold tags (training scheme) of the examples, in the pieces the component tags.

    Args:
        examples: spaCy examples; the reference holds the gold annotation.
        task: ``"ner"`` or ``"pos"``.
        scheme: The training scheme of NER tags (``IOB2`` or ``BIOES``).
        pos_attr: ``"tag"`` or ``"pos"``: the reference attribute a POS tagger learns.
        segments: Token indices of a doc's pieces (whitespace tokens left out, long docs cut).

    Returns:
        ``(words, tags)`` pairs, one per piece; examples without the annotation are left out.
    """
    out: list[Sentence] = []
    for eg in examples:
        tags = _ner_tags(eg, scheme) if task == "ner" else _pos_tags(eg, pos_attr)
        if tags is None:
            continue
        words = [t.text for t in eg.predicted]
        for idx in segments(eg.predicted):
            piece = [tags[i] for i in idx]
            # a piece cut out of a longer doc may begin or end inside an entity: repaired, as above
            out.append(([words[i] for i in idx], convert(piece, scheme, scheme) if task == "ner" else piece))
    return out


def new_tagger(task: str, config: str | Mapping[str, Any] | None, sentences: Sequence[Sentence]) -> "Tagger":
    """A new, untrained tagger: labels and vocabularies from the training sentences.

    Raises:
        DataError: No example had the task's annotation.
    """
    from .model import TaggerModel
    from .tagger import Tagger

    if not sentences:
        what = "entities (doc.ents)" if task == "ner" else "tags (token.tag_ or token.pos_, see pos_attr)"
        raise DataError(f"the training examples have no {what}; nothing to build a {task} tagger from")
    cfg = seqtag_config(task, config)
    labels = sorted({t for _, tags in sentences for t in tags} | ({"O"} if task == "ner" else set()))
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=[words for words, _ in sentences])
    return Tagger(cfg, labels, model, {"trained_with": "spacy train"})


class SpacyTrainer:
    """The torch optimizer of a tagger trained by spaCy, and its steps.

    Args:
        tagger: The tagger whose network is trained, already on its device (its config's ``[training]``
            table gives the optimizer, ``lr``, ``weight_decay`` and ``grad_clip``).
    """

    def __init__(self, tagger: "Tagger") -> None:
        from .config import TrainingConfig
        from .trainer import make_optimizer

        self.tagger = tagger
        self.tc = TrainingConfig.from_dict(tagger.config.get("training", {}))
        self.optimizer: "torch.optim.Optimizer" = make_optimizer(tagger.model, self.tc, sparse=False)
        self.index = {t: i for i, t in enumerate(tagger.labels)}
        self.pending = False  # gradients accumulated since the last step

    def _loss(self, sentences: Sequence[Sentence]) -> "torch.Tensor | None":
        """The summed loss of the sentences (``None`` for no sentence), as ``seqtag train`` computes it."""
        from .model import make_batch

        sents = [(w, t) for w, t in sentences if w]
        if not sents:
            return None
        unknown = sorted({t for _, tags in sents for t in tags} - set(self.index))
        if unknown:
            raise DataError(f"gold tags {unknown[:5]} are not among the tagger's labels; the examples given to "
                            f"initialize must hold every label the training examples use")
        model = self.tagger.model
        batch = make_batch(model, [w for w, _ in sents], [[self.index[t] for t in tags] for _, tags in sents])
        return model.loss(batch)  # shape: ()

    def loss(self, sentences: Sequence[Sentence]) -> float:
        """The loss of the sentences in eval mode, without gradients."""
        import torch

        with torch.no_grad():
            loss = self._loss(sentences)
        return 0.0 if loss is None else float(loss.item())

    def backward(self, sentences: Sequence[Sentence]) -> float:
        """Add the gradients of the sentences' loss (summed over the batch); returns the loss.

        The network is in training mode (dropout) only here, so the component predicts in eval mode.
        """
        import torch

        model = self.tagger.model
        model.train()
        try:
            loss = self._loss(sentences)
            if loss is None:
                return 0.0
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"the training loss became {loss.item()}; lower training.lr "
                                            f"or training.grad_clip in the component's seqtag_config")
            loss.backward()
        finally:
            model.eval()
        self.pending = True
        return float(loss.item())

    def step(self) -> None:
        """Clip the accumulated gradients, step the optimizer, clear the gradients (nothing if none)."""
        from .optim import clip_gradients

        if not self.pending:
            return
        model = self.tagger.model
        if self.tc.grad_clip > 0:
            clip_gradients(model.parameters(), self.tc.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.pending = False



class TrainableTagger:
    """What makes :class:`~seqtag.spacy_component.SeqtagComponent` trainable by ``spacy train``: spaCy's
    ``is_trainable``/``model``/``update``/``finish_update``/``get_loss`` contract, over its ``tagger``.

    The component gives ``name``, ``cfg`` (``task``, ``seqtag_config``, ``pos_attr``), ``tagger``,
    ``_tagger``, ``_trainer``, ``_runner`` (the reduced-precision copy that annotates, made again after
    each step), ``_set_tagger`` and ``_segments``.
    """

    name: str
    cfg: dict[str, Any]
    _tagger: "Tagger | None"
    _trainer: SpacyTrainer | None
    _runner: "Tagger | None"
    _set_tagger: Callable[["Tagger"], None]
    _segments: Segments

    if TYPE_CHECKING:
        @property
        def tagger(self) -> "Tagger": ...  # the component's: loads the tagger, or says why it cannot

    @property
    def is_trainable(self) -> bool:
        """``spacy train`` updates the tagger (list the component in ``frozen_components`` to keep it)."""
        return True

    @property
    def model(self) -> Any:
        """The tagger's torch network; ``None`` before a tagger is loaded or built (this never loads one).

        spaCy calls :meth:`finish_update` only for a component whose ``model`` is set.
        """
        return None if self._tagger is None else self._tagger.model

    def _build_tagger(self, examples: Iterable["Example"]) -> None:
        """A new tagger (``initialize`` without ``model``): labels and vocabularies from the examples."""
        task, config = self.cfg["task"], self.cfg["seqtag_config"]
        scheme = str(seqtag_config(task, config)["scheme"])
        self._set_tagger(new_tagger(task, config, self._gold(examples, task, scheme)))

    def _gold(self, examples: Iterable["Example"], task: str, scheme: str) -> list[Sentence]:
        return gold_sentences(examples, task, scheme, self.cfg["pos_attr"], self._segments)

    def _trainer_of_tagger(self) -> SpacyTrainer:
        if self._trainer is None:
            self._trainer = SpacyTrainer(self.tagger)
        return self._trainer

    def update(self, examples: Iterable["Example"], *, drop: float = 0.0, sgd: Any = None,
               losses: dict[str, float] | None = None) -> dict[str, float]:
        """Add the gradients of the tagger's loss on the examples' gold tags (aligned to the predicted
        tokens); step its optimizer when ``sgd`` is given (else spaCy calls :meth:`finish_update`).

        The tagger's own dropout (``model.dropout`` of its config) applies; ``drop`` is not used.
        ``losses[name]`` grows by the batch's summed loss.
        """
        from spacy.training import validate_examples

        validate_examples(examples, "SeqtagComponent.update")
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        tagger = self.tagger
        losses[self.name] += self._trainer_of_tagger().backward(self._gold(examples, tagger.task, tagger.scheme))
        if sgd not in (None, False):
            self.finish_update(sgd)
        return losses

    def finish_update(self, sgd: Any = None) -> None:
        """Step the tagger's torch optimizer on the gradients of the updates since the last step.

        ``sgd`` (spaCy's thinc optimizer) cannot step torch parameters: the component keeps its own
        optimizer, from the ``[training]`` table of the tagger's config.
        """
        if self._trainer is not None:
            self._trainer.step()
            self._runner = None  # an int8/bf16 copy holds the old recurrent weights

    def get_loss(self, examples: Iterable["Example"], scores: Any = None) -> tuple[float, None]:
        """The tagger's loss on the examples' gold tags (eval mode, no gradient), and ``None`` for the
        gradient of ``scores``: the network's output never leaves the component, which backpropagates itself."""
        from spacy.training import validate_examples

        examples = list(examples)
        validate_examples(examples, "SeqtagComponent.get_loss")
        tagger = self.tagger
        return self._trainer_of_tagger().loss(self._gold(examples, tagger.task, tagger.scheme)), None
