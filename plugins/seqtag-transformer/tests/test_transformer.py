"""seqtag-transformer keeps the seqtag part contract and trains from the command line."""

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
plugin = pytest.importorskip("seqtag_transformer",
                             reason="seqtag-transformer is not installed: pip install -e plugins/seqtag-transformer")
TransformerEncoder = plugin.TransformerEncoder
sinusoidal_positions = plugin.sinusoidal_positions


def test_contract_with_sinusoidal_positions() -> None:
    report = check_encoder("transformer.v1", distribution="seqtag-transformer", width=32, heads=4, layers=2)
    assert report.train_accuracy == 1.0


def test_contract_with_learned_positions_and_post_norm() -> None:
    check_encoder("transformer.v1", distribution="seqtag-transformer", width=24, heads=2, layers=1,
                  positions="learned", max_length=64, norm_first=False, activation="relu", ff_dim=48)


def test_builds_from_config_and_checks_its_arguments() -> None:
    enc = build_part("encoder", {"type": "transformer.v1", "width": 16, "heads": 2}, input_dim=5)
    assert isinstance(enc, TransformerEncoder) and (enc.input_dim, enc.output_dim) == (5, 16)
    with pytest.raises(ConfigError, match=r"heads \(3\) must divide width \(16\)"):
        build_part("encoder", {"type": "transformer.v1", "width": 16, "heads": 3}, input_dim=5)
    with pytest.raises(ConfigError, match="positions must be one of"):
        build_part("encoder", {"type": "transformer.v1", "positions": "rotary"}, input_dim=5)


@pytest.mark.parametrize("cfg", [{}, {"positions": "learned", "max_length": 40, "norm_first": False},
                                 {"width": 12, "heads": 3, "ff_dim": 20, "layers": 3}])
def test_estimate_size_is_the_parameter_count(cfg: dict) -> None:
    from seqtag.resources import estimate_part

    enc = build_part("encoder", {"type": "transformer.v1", **cfg}, input_dim=5)
    size = estimate_part("encoder", {"type": "transformer.v1", **cfg}, 5)
    assert (size.parameters, size.output_dim) == (sum(p.numel() for p in enc.parameters()), enc.output_dim)


def test_a_billion_layers_are_refused_before_any_is_built() -> None:
    from seqtag.errors import ResourceError
    from seqtag.resources import check_model

    model = {"embedding": {"type": "word.v1"}, "encoder": {"type": "transformer.v1", "layers": 10 ** 9},
             "head": {"type": "softmax.v1"}}
    with pytest.raises(ResourceError, match="of them in the encoder 'transformer.v1'"):
        check_model(model, ["O", "B-PER"], assets={})


def test_padding_is_zero_and_sentences_beyond_learned_positions_are_refused() -> None:
    enc = TransformerEncoder(6, width=8, heads=2, layers=1, dropout=0.0, positions="learned", max_length=4).eval()
    mask = torch.tensor([[True, True, False, False]])  # shape: (1, 4)
    out = enc(torch.randn(1, 4, 6), mask)  # shape: (1, 4, 8)
    assert out[0, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="longer than max_length=4"):
        enc(torch.randn(1, 5, 6), None)


def test_sinusoidal_positions_follow_the_formula() -> None:
    pe = sinusoidal_positions(50, 7)  # shape: (50, 7)
    assert pe.shape == (50, 7)
    assert torch.allclose(pe[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.allclose(pe[3, 1], torch.cos(torch.tensor(3.0)))
    assert torch.allclose(pe[10, 2], torch.sin(torch.tensor(10.0 / 10000 ** (2 / 7))))


def test_trains_from_the_command_line(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus")
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "train", "--task", "ner", "--dataset", str(corpus),
                          "--set", "model.tokenizer.type=whitespace.v1", "--set", "model.encoder.type=transformer.v1",
                          "--set", "model.encoder.width=24", "--set", "training.max_steps=3", "--max-epochs", "1",
                          "-o", str(tmp_path / "model"), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "seqtag-transformer" in meta["plugins"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model"]["encoder"]["width"] == 24


@pytest.mark.parametrize("norm_first,activation", [(True, "gelu"), (False, "relu")])
def test_traceable_layers_equal_pytorchs_layers(norm_first: bool, activation: str) -> None:
    """The export form's layers give nn.TransformerEncoder's outputs (fused kernels and all) on a padded batch."""
    torch.manual_seed(0)
    enc = TransformerEncoder(6, width=8, heads=2, layers=2, dropout=0.0, norm_first=norm_first,
                             activation=activation).eval()
    x = torch.randn(3, 5, 6)  # shape: (3, 5, 6)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True] * 3 + [False] * 2])
    with torch.inference_mode():
        torch.testing.assert_close(enc.export_module()(x, mask), enc(x, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [{"width": 16, "heads": 2},
                                 {"width": 12, "heads": 3, "layers": 1, "positions": "learned",
                                  "norm_first": False, "activation": "relu"}])
def test_exports_to_onnx_and_tags_as_pytorch(cfg: dict) -> None:
    """A tagger with this encoder, fitted to the kit's tiny corpus and exported through the encoder's hook,
    tags in onnxruntime as in PyTorch."""
    pytest.importorskip("onnxruntime")
    from seqtag.testing import check_exports

    check_exports("encoder", "transformer.v1", cfg)
