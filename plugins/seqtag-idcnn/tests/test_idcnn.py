"""seqtag-idcnn keeps the seqtag part contract and trains from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtag.config import build_part
from seqtag.errors import ConfigError
from seqtag.testing import check_encoder, write_tiny_corpus

torch.set_num_threads(1)
plugin = pytest.importorskip("seqtag_idcnn",
                             reason="seqtag-idcnn is not installed: pip install -e plugins/seqtag-idcnn")
IDCNNEncoder = plugin.IDCNNEncoder


def test_contract_with_shared_weights() -> None:
    report = check_encoder("idcnn.v1", distribution="seqtag-idcnn", filters=32)
    assert report.train_accuracy == 1.0


def test_contract_without_sharing_with_residuals_and_dropout() -> None:
    check_encoder("idcnn.v1", distribution="seqtag-idcnn", filters=24, dilations=[1, 2, 4], iterations=2,
                  share_weights=False, residual=True, dropout=0.1, identity_init=False, kernel_size=5)


def test_builds_from_config_and_checks_its_arguments() -> None:
    enc = build_part("encoder", {"type": "idcnn.v1", "filters": 16, "iterations": 3}, input_dim=5)
    assert isinstance(enc, IDCNNEncoder) and (enc.input_dim, enc.output_dim) == (5, 16)
    assert len(enc.blocks) == 1  # shared across the 3 iterations
    unshared = IDCNNEncoder(5, filters=16, iterations=3, share_weights=False)
    assert len(unshared.blocks) == 3
    with pytest.raises(ConfigError, match="kernel_size must be a positive odd number"):
        build_part("encoder", {"type": "idcnn.v1", "kernel_size": 4}, input_dim=5)
    with pytest.raises(ConfigError, match="dilations must be a non-empty list"):
        build_part("encoder", {"type": "idcnn.v1", "dilations": []}, input_dim=5)


@pytest.mark.parametrize("cfg", [{}, {"filters": 6, "kernel_size": 5, "dilations": [1, 2, 4], "iterations": 3,
                                      "share_weights": False}])
def test_estimate_size_is_the_parameter_count(cfg: dict) -> None:
    from seqtag.resources import estimate_part

    enc = build_part("encoder", {"type": "idcnn.v1", **cfg}, input_dim=5)
    size = estimate_part("encoder", {"type": "idcnn.v1", **cfg}, 5)
    assert (size.parameters, size.output_dim) == (sum(p.numel() for p in enc.parameters()), enc.output_dim)


def test_a_billion_unshared_iterations_are_refused_before_any_is_built() -> None:
    from seqtag.errors import ResourceError
    from seqtag.resources import check_model

    model = {"embedding": {"type": "word.v1"}, "head": {"type": "softmax.v1"},
             "encoder": {"type": "idcnn.v1", "iterations": 10 ** 9, "share_weights": False}}
    with pytest.raises(ResourceError, match="of them in the encoder 'idcnn.v1'"):
        check_model(model, ["O", "B-PER"], assets={})


def test_receptive_field_grows_with_dilation_and_padding_is_zero() -> None:
    enc = IDCNNEncoder(4, filters=8, dilations=[1, 2, 4], iterations=1).eval()
    x = torch.randn(1, 40, 4)  # shape: (1, 40, 4)
    y = x.clone()
    y[0, 20] += 10.0  # a change at token 20 reaches tokens 20 +/- (1 + 1 + 2 + 4) = 12..28 only
    with torch.no_grad():
        diff = (enc(x) - enc(y)).abs().sum(-1)[0]  # shape: (40,)
    assert diff[:12].abs().max() == 0 and diff[29:].abs().max() == 0 and diff[20] > 0
    mask = torch.arange(40).unsqueeze(0) < 30  # shape: (1, 40)
    assert enc(x, mask)[0, 30:].abs().sum() == 0


def test_trains_from_the_command_line(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus")
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "train", "--task", "ner", "--dataset", str(corpus),
                          "--set", "model.tokenizer.type=whitespace.v1", "--set", "model.encoder.type=idcnn.v1",
                          "--set", "model.encoder.filters=32", "--set", "training.max_steps=3", "--max-epochs", "1",
                          "-o", str(tmp_path / "model"), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "seqtag-idcnn" in json.loads((tmp_path / "model" / "meta.json").read_text())["plugins"]


@pytest.mark.parametrize("cfg", [{"filters": 16},
                                 {"filters": 12, "share_weights": False, "residual": True, "dilations": [1, 2]}])
def test_exports_to_onnx_and_tags_as_pytorch(cfg: dict) -> None:
    """A tagger with this encoder, fitted to the kit's tiny corpus and exported through the encoder's hook,
    tags in onnxruntime as in PyTorch."""
    pytest.importorskip("onnxruntime")
    from seqtag.testing import check_exports

    check_exports("encoder", "idcnn.v1", cfg)
