"""The contract kit (seqtag.testing) passes good parts and names what is wrong with bad ones."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from seqtag import registry
from seqtag.testing import CheckOptions, check_encoder, check_head, check_part, check_tokenizer

FAST = CheckOptions(fresh_process=False)
PLUGINS_MD = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"

BAD_PARTS = '''
import torch
import torch.nn.functional as F
from torch import nn
from seqtag import registry
from seqtag.embeddings import Embedding
from seqtag.embeddings.base import pad_ids
from seqtag.encoders import Encoder
from seqtag.heads.base import Head

_PROJECTION = torch.randn(64, 64)  # module state, different in every process


class _Square(Encoder):
    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = self.output_dim = input_dim
        self.lin = nn.Linear(input_dim, input_dim)


@registry.encoders.register("kit_leaky.v1")
class Leaky(_Square):
    """Adds the mean over every position, padding included."""

    def forward(self, x, mask=None):
        return self.lin(x) + x.mean(dim=1, keepdim=True)


@registry.encoders.register("kit_nodim.v1")
class NoDim(Encoder):
    """Forgets output_dim."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = input_dim

    def forward(self, x, mask=None):
        return x


@registry.encoders.register("kit_global.v1")
class Global(_Square):
    """Uses a projection that lives in the module, not in the saved weights."""

    def forward(self, x, mask=None):
        return self.lin(x @ _PROJECTION[: x.size(-1), : x.size(-1)])


@registry.encoders.register("kit_wrongsize.v1")
class WrongSize(Encoder):
    """Estimates its size without the bias."""

    def __init__(self, input_dim: int, width: int = 8) -> None:
        super().__init__()
        self.input_dim, self.output_dim = input_dim, width
        self.lin = nn.Linear(input_dim, width)

    @classmethod
    def estimate_size(cls, input_dim, /, *, width, **config):
        from seqtag.resources import PartSize

        return PartSize(input_dim * width, width)

    def forward(self, x, mask=None):
        return self.lin(x)


@registry.embeddings.register("kit_novocab.v1")
class NoVocab(Embedding):
    """Builds a vocabulary in initialize() but does not save it."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.output_dim = dim
        self.vocab = {}
        self.embed = nn.Embedding(2, dim)

    def initialize(self, sentences):
        for s in sentences:
            for w in s:
                self.vocab.setdefault(w, len(self.vocab) + 1)
        self.embed = nn.Embedding(len(self.vocab) + 1, self.output_dim, padding_idx=0)

    def get_assets(self):
        return {}

    def featurize(self, batch):
        return {"ids": pad_ids([[self.vocab.get(w, 0) for w in s] for s in batch])}

    def forward(self, features):
        return self.embed(features["ids"])


@registry.embeddings.register("kit_leakyemb.v1")
class LeakyEmbedding(Embedding):
    """Adds the mean vector of the batch row, padding included."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.output_dim = dim
        self.embed = nn.Embedding(64, dim, padding_idx=0)

    def get_assets(self):
        return {}

    def featurize(self, batch):
        return {"ids": pad_ids([[1 + sum(map(ord, w)) % 63 for w in s] for s in batch])}

    def forward(self, features):
        vectors = self.embed(features["ids"])
        return vectors + vectors.mean(dim=1, keepdim=True)


class _Linear(Head):
    def __init__(self, input_dim: int, labels, scheme: str = "IOB2") -> None:
        super().__init__(input_dim, labels, scheme)
        self.proj = nn.Linear(input_dim, self.num_tags)

    def loss(self, x, tags, mask):
        return F.cross_entropy(self.proj(x)[mask], tags[mask], reduction="sum") / x.size(0)

    def decode(self, x, mask, with_confidence=True):
        conf, best = self.proj(x).softmax(dim=-1).max(dim=-1)
        return best.masked_fill(~mask, 0), conf.masked_fill(~mask, 0.0)


@registry.heads.register("kit_sumall.v1")
class SumAll(_Linear):
    """Sums the cross-entropy over every position, padding included."""

    def loss(self, x, tags, mask):
        return F.cross_entropy(self.proj(x).flatten(0, 1), tags.flatten(), reduction="sum") / x.size(0)


@registry.heads.register("kit_peeking.v1")
class Peeking(_Linear):
    """Decodes each position with the mean over the row, padding included."""

    def decode(self, x, mask, with_confidence=True):
        return super().decode(x + x.mean(dim=1, keepdim=True), mask)


@registry.heads.register("kit_slowtags.v1")
class SlowTags(_Linear):
    """Decodes other tags when asked for no confidences."""

    def decode(self, x, mask, with_confidence=True):
        best, conf = super().decode(x, mask)
        return (best if with_confidence else (best + 1) * mask), conf


@registry.heads.register("kit_noflag.v1")
class NoFlag(_Linear):
    """Decodes without the with_confidence flag."""

    def decode(self, x, mask):
        return super().decode(x, mask)
'''


@pytest.fixture(scope="module")
def bad_parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("kit")
    (folder / "kit_bad_parts.py").write_text(textwrap.dedent(BAD_PARTS))
    sys.path.insert(0, str(folder))
    importlib.import_module("kit_bad_parts")
    yield "kit_bad_parts"
    sys.path.remove(str(folder))
    sys.modules.pop("kit_bad_parts", None)
    for name in ("kit_leaky.v1", "kit_nodim.v1", "kit_global.v1", "kit_wrongsize.v1"):
        registry.encoders._parts.pop(name, None)
    for name in ("kit_novocab.v1", "kit_leakyemb.v1"):
        registry.embeddings._parts.pop(name, None)
    for name in ("kit_sumall.v1", "kit_peeking.v1", "kit_slowtags.v1", "kit_noflag.v1"):
        registry.heads._parts.pop(name, None)


def test_builtin_parts_pass() -> None:
    report = check_encoder("gru.v1", hidden_size=8)
    assert report.train_accuracy == 1.0 and report.distribution == registry.BUILTIN_DIST
    assert set(report.seconds) == {"registered", "config", "contract", "fits", "save/load"}
    check_head("crf.v1", options=FAST)
    check_tokenizer("whitespace.v1", options=FAST)


def test_unknown_names_wrong_distributions_and_bad_kwargs_are_reported() -> None:
    with pytest.raises(AssertionError, match=r"\[seqtag.testing registered\] encoder 'nope.v1': not found by name"):
        check_encoder("nope.v1")
    with pytest.raises(AssertionError, match=f"registered by '{registry.BUILTIN_DIST}', expected 'seqtag-lstm'"):
        check_encoder("lstm.v1", distribution="seqtag-lstm")
    with pytest.raises(AssertionError, match="takes no argument 'hidden'"):
        check_encoder("lstm.v1", hidden=3)
    with pytest.raises(AssertionError, match="unknown part kind 'decoder'"):
        check_part("decoder", "lstm.v1")


def test_an_encoder_that_lets_padding_in_fails(bad_parts: str) -> None:
    with pytest.raises(AssertionError, match="padding must not change real positions|use the mask"):
        check_encoder("kit_leaky.v1", options=FAST)


PADDING_BUGS = [
    ("embedding", "kit_leakyemb.v1", r"\[seqtag.testing contract\] embedding 'kit_leakyemb.v1': the vectors of a "
                                     r"sentence of \d+ tokens differ alone and padded to \d+"),
    # the loss of a real plugin once summed over every position: padded tags and features changed it
    ("head", "kit_sumall.v1", r"\[seqtag.testing contract\] head 'kit_sumall.v1': the loss changes from \S+ to \S+ "
                              r"when the padded positions hold other features or tags \(scheme 'IOB2', max diff "
                              r"\S+\); the loss must ignore padded positions"),
    ("head", "kit_peeking.v1", r"\[seqtag.testing contract\] head 'kit_peeking.v1': the decoded (tags|confidences) "
                               r"at real positions change when the padded positions hold other features"),
    ("head", "kit_slowtags.v1", r"decode\(x, mask, with_confidence=False\) gives other tags"),
    ("head", "kit_noflag.v1", r"decode must take with_confidence"),
]


@pytest.mark.parametrize(("kind", "name", "message"), PADDING_BUGS, ids=[name for _, name, _ in PADDING_BUGS])
def test_a_part_that_lets_padding_in_or_decodes_two_ways_fails(bad_parts: str, kind: str, name: str,
                                                               message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_part(kind, name, options=FAST)


def test_an_encoder_without_output_dim_fails(bad_parts: str) -> None:
    with pytest.raises(AssertionError, match="must set self.output_dim"):
        check_encoder("kit_nodim.v1", options=FAST)


def test_an_estimate_size_that_is_not_the_built_size_fails(bad_parts: str) -> None:
    with pytest.raises(AssertionError, match=r"\[seqtag.testing fits\] encoder 'kit_wrongsize.v1': estimate_size gives "
                                             r"160 parameters and output size 8; the built part has 168 and 8"):
        check_encoder("kit_wrongsize.v1", options=FAST)


def test_an_embedding_that_does_not_save_its_vocabulary_fails(bad_parts: str) -> None:
    with pytest.raises(AssertionError, match=r"\[seqtag.testing contract\] embedding 'kit_novocab.v1'"):
        check_part("embedding", "kit_novocab.v1", options=FAST)


def test_state_outside_the_saved_folder_is_caught_in_a_fresh_process(bad_parts: str) -> None:
    check_encoder("kit_global.v1", options=FAST)  # in this process the module state is still there
    with pytest.raises(AssertionError, match="loaded in a fresh process: tags for .* changed|confidences for"):
        check_encoder("kit_global.v1", options=CheckOptions(atol=1e-6))


def test_the_head_walkthrough_is_what_new_plugin_writes_and_keeps_the_contract(tmp_path: Path) -> None:
    from seqtag.scaffold import new_plugin

    text = PLUGINS_MD.read_text(encoding="utf-8")
    walkthrough = text[text.index("## A head, by hand"):text.index("## The contract, kind by kind")]
    pyproject = re.findall(r"```toml\n(.*?)```", walkthrough, flags=re.S)[0]
    module, test = re.findall(r"```python\n(.*?)```", walkthrough, flags=re.S)
    root = new_plugin("mlp", "head", tmp_path)
    assert (root / "pyproject.toml").read_text(encoding="utf-8") == pyproject
    assert (root / "seqtag_mlp" / "__init__.py").read_text(encoding="utf-8") == module
    assert (root / "tests" / "test_mlp.py").read_text(encoding="utf-8") == test
    namespace: dict = {"__name__": "seqtag_mlp_walkthrough"}
    exec(compile(module, "docs/plugins.md", "exec"), namespace)
    registry.heads.register("walkthrough_mlp.v1", namespace["MlpHead"])
    try:
        report = check_head("walkthrough_mlp.v1", hidden_size=32, options=FAST)
    finally:
        registry.heads._parts.pop("walkthrough_mlp.v1", None)
    assert report.train_accuracy == 1.0


def test_the_export_check_passes_a_builtin_part_and_names_a_part_without_the_hook() -> None:
    pytest.importorskip("onnxruntime")
    import torch

    from seqtag import registry
    from seqtag.errors import ExportError
    from seqtag.testing import check_exports

    check_exports("encoder", "gru.v1", {"hidden_size": 8})

    class Plain(torch.nn.Module):
        """A plain module, not an Encoder subclass: it has no export_module()."""

        def __init__(self, input_dim: int) -> None:
            super().__init__()
            self.input_dim = self.output_dim = input_dim
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            return x * self.scale

    registry.encoders.register("kit_plain.v1", Plain)
    try:
        with pytest.raises(ExportError, match="the encoder 'kit_plain.v1' .* cannot be exported to ONNX"):
            check_exports("encoder", "kit_plain.v1")
    finally:
        registry.encoders._parts.pop("kit_plain.v1")
