"""training.average: the exponential moving average of the weights, scored and saved, kept in checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from seqtag.averaging import WeightAverage
from seqtag.config import TrainingConfig
from seqtag.errors import ConfigError

from .conftest import train_small


def test_the_average_follows_the_formula_and_is_applied_only_inside_the_block() -> None:
    model = nn.Linear(3, 2)
    frozen = nn.Parameter(torch.zeros(2), requires_grad=False)
    model.register_parameter("frozen", frozen)
    avg = WeightAverage(model, 0.9)
    assert avg.names == ["weight", "bias"]
    want = [p.detach().clone() for p in (model.weight, model.bias)]
    for step in range(1, 30):
        with torch.no_grad():
            for p in (model.weight, model.bias):
                p.add_(1.0)
        avg.update()
        d = min(0.9, (1 + step) / (10 + step))
        want = [w + (1 - d) * (p.detach() - w) for w, p in zip(want, (model.weight, model.bias))]
    own = model.weight.detach().clone()
    version = model.weight._version
    with avg.applied():
        torch.testing.assert_close(model.weight.detach(), want[0])
        torch.testing.assert_close(model.bias.detach(), want[1])
        assert model.weight._version > version  # caches keyed on the versions see the change
    assert torch.equal(model.weight.detach(), own)
    assert not torch.allclose(want[0], own)  # the average lags the weights


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_a_bad_average_is_one_config_error(bad: float) -> None:
    with pytest.raises(ConfigError, match=r"\[training\] average must be in \[0, 1\)"):
        TrainingConfig.from_dict({"average": bad})


def test_the_saved_model_holds_the_average_and_the_checkpoint_both(tmp_path: Path) -> None:
    out = tmp_path / "m"
    train_small("ner", out, {"training": {"max_epochs": 1, "average": 0.9, "calibrate": False}})
    saved = load_file(str(out / "model.safetensors"))
    ckpt = load_file(str(out / "checkpoint" / "state.safetensors"))
    names = [k[len("extra.average."):] for k in ckpt if k.startswith("extra.average.")]
    assert names and int(ckpt["extra.steps"][0]) > 0
    for name in names:
        torch.testing.assert_close(saved[name], ckpt[f"extra.average.{name}"])  # the model saved is the average
    assert any(not torch.equal(ckpt[f"model.{n}"], ckpt[f"extra.average.{n}"]) for n in names)  # training's own


def test_a_resumed_run_averages_on_as_an_uninterrupted_one(tmp_path: Path) -> None:
    settings = {"average": 0.9, "calibrate": False, "patience": 5, "lr_decay": 1.0}
    train_small("ner", tmp_path / "whole", {"training": {**settings, "max_epochs": 2}})
    train_small("ner", tmp_path / "parts", {"training": {**settings, "max_epochs": 1}})
    from seqtag.config import merge
    from seqtag.data import load_corpus
    from seqtag.trainer import build_config, train

    from .conftest import SAMPLES, SMALL

    cfg = build_config("ner", merge(SMALL, {"training": {**settings, "max_epochs": 2}}))
    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    train(cfg, corpus.sentences("train", cfg["scheme"]), corpus.sentences("dev", "IOB2"), tmp_path / "parts",
          resume=True, progress=False, log=lambda m: None)
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "state.safetensors"))
    b = load_file(str(tmp_path / "parts" / "checkpoint" / "state.safetensors"))
    averages = [k for k in a if k.startswith("extra.")]
    assert averages and all(torch.equal(a[k], b[k]) for k in averages)
    wa = load_file(str(tmp_path / "whole" / "model.safetensors"))
    wb = load_file(str(tmp_path / "parts" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
