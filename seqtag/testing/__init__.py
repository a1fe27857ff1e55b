"""The contract kit: the checks every part (tokenizer, embedding, encoder, head) must pass.

Plugin authors call these from their own tests::

    from seqtag.testing import check_encoder

    def test_my_encoder_keeps_the_contract(tmp_path):
        check_encoder("my_encoder.v1", distribution="seqtag-my-encoder", hidden_size=32)

:func:`check_part` (and its shorthands :func:`check_tokenizer`, :func:`check_embedding`,
:func:`check_encoder`, :func:`check_head`) runs, in order:

1. **registered** (:mod:`.registration`): the versioned name is found through the registry (entry
   points included) and, when ``distribution`` is given, it comes from that installed distribution;
   the part has a description and takes the arguments the model wires.
2. **config** (:mod:`.registration`): the keyword arguments pass the signature check; the resolved
   config (every default filled in) is JSON and builds the part again.
3. **contract**: the kind's own rules (:mod:`.tokenizers`, :mod:`.embeddings`, :mod:`.encoders`,
   :mod:`.heads`): shapes, gradients, JSON assets, tokens whose offsets point into the text,
   confidences in ``[0, 1]``, and padding invariance (:mod:`.padding`): whatever sits at padded
   positions and however wide the batch is, real positions get the same vectors, a head the same
   loss, tags and confidences, and a head's loss has no gradient at padded positions.
4. **fits** (:mod:`.fitting`): a small tagger with the part in its slot trains on a tiny built-in
   corpus until its training accuracy reaches ``min_accuracy`` (100 % by default), and its loss
   falls. A part with an ``estimate_size`` hook (:mod:`seqtag.resources`) must estimate the built
   part's parameter count (within 1 %) and its output size.
5. **save/load** (:mod:`.roundtrip`): the tagger is saved, the Python objects are deleted, the folder
   is moved, and it is loaded again in this process and in a fresh Python process (so nothing
   outside the saved folder is used, such as a module-level cache); the predictions must be identical.

:func:`check_exports` (:mod:`.exporting`) is the export check, separate since it needs onnxruntime:
the fitted tagger exports to ONNX through the parts' ``export_module()`` hooks and tags in
onnxruntime as in PyTorch.

Every failure is an :class:`AssertionError` that says which check failed and why
(``[seqtag.testing contract] head 'my_head.v1': ...``). torch is imported only when a check runs.
"""

from __future__ import annotations

from .common import TINY_CORPUS, CheckOptions, CheckReport, write_tiny_corpus
from .exporting import check_exports
from .fitting import check_fits, tiny_config
from .kit import check_embedding, check_encoder, check_head, check_part, check_tokenizer
from .registration import check_config, check_registered
from .roundtrip import check_save_load

__all__ = [
    "CheckOptions",
    "CheckReport",
    "TINY_CORPUS",
    "check_part",
    "check_exports",
    "check_tokenizer",
    "check_embedding",
    "check_encoder",
    "check_head",
    "check_registered",
    "check_config",
    "check_fits",
    "check_save_load",
    "tiny_config",
    "write_tiny_corpus",
]
