"""Devices for loading, prediction, export and the spaCy component.

These run on the CPU: ``cpu`` and ``auto`` must predict as before, and a device that is not here (CUDA
and MPS on a machine without them, or a name that is no device) must be one :class:`DeviceError` line
wherever it is named. Saving writes float32 CPU tensors whatever the network's dtype and device.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import seqtag
from seqtag.devices import resolve_device, to_device
from seqtag.errors import DeviceError, SeqtagError
from seqtag.model import make_batch
from seqtag.predict_io import predict_lines
from seqtag.tagger import Tagger

FIXTURES = Path(__file__).parent / "fixtures" / "models"
CUDA = torch.cuda.is_available()
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _absent() -> list[str]:
    """Device names that must be refused on this machine: names of no device, and devices it lacks."""
    specs = ["gpu", "cuda:x", "auto:0", "tpu"]
    if not CUDA:
        specs += ["cuda", "cuda:0"]
    if torch.cuda.device_count() < 8:
        specs.append("cuda:7")
    if not MPS:
        specs.append("mps")
    return specs


ABSENT = _absent()


def _one_line(exc: BaseException, spec: str) -> None:
    """A user error on one line that names the device asked for."""
    assert isinstance(exc, DeviceError) and isinstance(exc, SeqtagError)
    text = str(exc)
    assert text and "\n" not in text and exc.one_line() == text
    assert repr(spec) in text, text


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 0.1.0 fixtures, copied: loading may finish an interrupted save, never in the repository."""
    root = tmp_path_factory.mktemp("device-models")
    out = {}
    for task in ("ner", "pos"):
        out[task] = root / task
        shutil.copytree(FIXTURES / f"{task}-0.1.0", out[task])
    return out


def _tokens(task: str) -> list[list[str]]:
    return json.loads((FIXTURES / f"{task}-0.1.0.expected.json").read_text())["tokens"]


def _tags(tagger: Any, sents: list[list[str]]) -> list[list[str]]:
    return [p.tags for p in tagger.predict(sents)]


def _raises(spec: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` raises the one-line DeviceError naming ``spec``."""
    with pytest.raises(DeviceError) as info:
        fn(*args, **kwargs)
    _one_line(info.value, spec)


# -- loading and predicting -------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["ner", "pos"])
def test_cpu_and_auto_predict_as_the_default_load(models: dict[str, Path], task: str) -> None:
    sents = _tokens(task)
    want = seqtag.load(models[task]).predict(sents)
    assert seqtag.load(models[task]).device == torch.device("cpu")  # the default is the CPU, never auto
    for spec in ("cpu", "auto", torch.device("cpu")):
        tagger = seqtag.load(models[task], device=spec)
        assert tagger.device == resolve_device(spec)
        got = tagger.predict(sents)
        assert [p.tags for p in got] == [p.tags for p in want]
        assert [p.scores for p in got] == [p.scores for p in want]
        assert all(type(s) is float for p in got for s in p.scores)  # plain Python, whatever the device
    if not CUDA and not MPS:
        assert Tagger.load(models[task], device="auto").device.type == "cpu"


def test_to_moves_the_tagger_and_returns_it(models: dict[str, Path]) -> None:
    tagger = Tagger.load(models["ner"])
    sents = _tokens("ner")
    want = _tags(tagger, sents)
    assert tagger.to("cpu") is tagger and tagger.to(None) is tagger and tagger.device.type == "cpu"
    assert _tags(tagger, sents) == want
    for spec in ABSENT:
        _raises(spec, tagger.to, spec)
        assert tagger.device.type == "cpu"  # a refused move leaves the tagger where it was
    assert _tags(tagger, sents) == want


@pytest.mark.parametrize("spec", ABSENT)
def test_an_absent_device_is_one_line_on_load(models: dict[str, Path], spec: str) -> None:
    _raises(spec, seqtag.load, models["pos"], device=spec)
    _raises(spec, Tagger.load, models["pos"], verify=False, device=spec)


def test_the_device_is_checked_before_any_file_is_read(tmp_path: Path) -> None:
    _raises("gpu", Tagger.load, tmp_path / "no-such-model", device="gpu")


def _drain(*args: Any, **kwargs: Any) -> list[str]:
    return list(predict_lines(*args, **kwargs))


def test_predict_lines_takes_a_device(models: dict[str, Path]) -> None:
    text = "EU rejects German call\nPeter Blackburn\n"
    want = list(predict_lines(str(models["ner"]), io.StringIO(text), "text", "jsonl", log=lambda _: None))
    got = list(predict_lines(str(models["ner"]), io.StringIO(text), "text", "jsonl", log=lambda _: None,
                             device="cpu"))
    assert got == want and len(got) == 2
    for spec in ("cuda:7", "gpu"):
        if spec in ABSENT:
            _raises(spec, _drain, str(models["ner"]), io.StringIO(text), "text", "jsonl", log=lambda _: None,
                    device=spec)


# -- saving -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_save_writes_float32_cpu_tensors_whatever_the_dtype(models: dict[str, Path], tmp_path: Path,
                                                            dtype: torch.dtype) -> None:
    from safetensors import safe_open

    tagger = Tagger.load(models["ner"])
    sents = _tokens("ner")
    want = _tags(tagger, sents)
    tagger.model.to(dtype)
    moved = {k: v.clone() for k, v in tagger.model.state_dict().items()}
    tagger.save(tmp_path / "m")
    assert all(v.dtype == dtype for v in tagger.model.state_dict().values() if v.is_floating_point())  # untouched
    with safe_open(str(tmp_path / "m" / "model.safetensors"), framework="pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys()}
    assert set(saved) == set(moved)
    for key, tensor in saved.items():
        assert tensor.dtype == torch.float32 and tensor.device.type == "cpu", (key, tensor.dtype)
        assert torch.equal(tensor, moved[key].to(torch.float32)), key
    back = Tagger.load(tmp_path / "m")
    assert all(p.dtype == torch.float32 for p in back.model.parameters())
    if dtype == torch.float64:  # float32 -> float64 -> float32 is exact: the same model again
        assert _tags(back, sents) == want


# -- features ---------------------------------------------------------------------------------------------
def test_to_device_moves_nested_features_and_keeps_the_rest() -> None:
    ids, chars, lengths = torch.ones(2, 3, dtype=torch.long), torch.zeros(4, 5, dtype=torch.long), torch.ones(4)
    features = {"0": {"ids": ids, "casing": ids}, "1": {"chars": chars, "lengths": lengths, "_words": ["a", "b"]},
                "pair": (ids, [chars]), "n": 3}
    meta = torch.device("meta")
    moved = to_device(features, meta)
    assert moved["0"]["ids"].device == meta and moved["0"]["casing"].device == meta
    assert moved["1"]["chars"].device == meta and moved["1"]["lengths"].device == meta
    assert isinstance(moved["pair"], tuple) and moved["pair"][0].device == meta and moved["pair"][1][0].device == meta
    assert moved["1"]["_words"] == ["a", "b"] and moved["n"] == 3
    assert moved["0"]["ids"].shape == ids.shape and moved["0"]["ids"].dtype == torch.long
    assert features["0"]["ids"].device.type == "cpu"  # the input is left as it was


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_a_batch_goes_where_the_network_is(models: dict[str, Path], task: str) -> None:
    """make_batch puts every tensor of a batch (the nested features too) on the network's device."""
    model = Tagger.load(models[task]).model.to("meta")
    batch = make_batch(model, [["EU", "rejects", "German", "call"], ["x"]], tags=[[0, 0, 0, 0], [0]])
    tensors = [batch.mask, batch.tags, *(t for _, t in _flat(batch.features))]
    assert len(tensors) > 3 and all(t.device.type == "meta" for t in tensors)


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_the_embeddings_predict_where_the_network_is(models: dict[str, Path], task: str) -> None:
    """Prediction's embedding pass (the character cache included) creates nothing off the network's
    device: on "meta" any CPU tensor meeting a device one is an error."""
    model = Tagger.load(models[task]).model.to("meta")
    with torch.inference_mode():
        out = model.embedding(make_batch(model, [["EU", "rejects", "German", "call"], ["x"]]).features)
    assert out.device.type == "meta" and out.shape[:2] == (2, 4)


def _flat(features: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    out: list[tuple[str, torch.Tensor]] = []
    for key, value in features.items():
        if isinstance(value, dict):
            out.extend(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, torch.Tensor):
            out.append((f"{prefix}{key}", value))
    return out


# -- ONNX -------------------------------------------------------------------------------------------------
def test_export_onnx_and_onnx_tagger_take_a_device(models: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from seqtag.export import export_onnx
    from seqtag.onnx_runtime import OnnxTagger

    model = models["pos"]
    for spec in ("cuda:7", "gpu"):
        if spec in ABSENT:
            out = tmp_path / f"{spec.replace(':', '_')}.onnx"
            _raises(spec, export_onnx, model, out, device=spec)
            assert not out.exists()
    out = export_onnx(model, tmp_path / "pos.onnx", device="cpu")
    sents = _tokens("pos")
    want = _tags(Tagger.load(model), sents)
    for spec in ("cpu", None, "auto"):
        runner = OnnxTagger(model, out, device=spec)
        assert runner.device in ("cpu", "cuda:0")
        assert _tags(runner, sents) == want
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert OnnxTagger(model, out, device="auto").device == "cpu"
        for spec in ("cuda", "cuda:1"):
            _raises(spec, OnnxTagger, model, out, device=spec)
    for spec in ("gpu", "mps"):
        _raises(spec, OnnxTagger, model, out, device=spec)


def test_onnx_providers() -> None:
    from seqtag.onnx_runtime import onnx_providers

    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert onnx_providers(None, [cpu]) == ([cpu], "cpu")
    assert onnx_providers("cpu", [cuda, cpu]) == ([cpu], "cpu")
    assert onnx_providers("auto", [cpu]) == ([cpu], "cpu")
    assert onnx_providers("auto", [cuda, cpu]) == ([(cuda, {"device_id": 0}), cpu], "cuda:0")
    assert onnx_providers("CUDA:1", [cuda, cpu]) == ([(cuda, {"device_id": 1}), cpu], "cuda:1")
    for spec, available in (("cuda", [cpu]), ("cuda:0", [cpu]), ("mps", [cuda, cpu]), ("gpu", [cuda, cpu]),
                            ("auto:1", [cpu])):
        with pytest.raises(DeviceError) as info:
            onnx_providers(spec, available)
        _one_line(info.value, spec)


# -- the spaCy component ----------------------------------------------------------------------------------
def _nlp(model: Path | None = None, **cfg: Any) -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={**({"model": str(model)} if model is not None else {}), **cfg})
    return nlp


def _doc_tags(nlp: Any, sents: list[list[str]]) -> list[list[str]]:
    from spacy.tokens import Doc

    return [[t.tag_ for t in doc] for doc in nlp.pipe(Doc(nlp.vocab, words=w) for w in sents)]


def test_the_component_runs_on_its_device(models: dict[str, Path]) -> None:
    sents = _tokens("pos")
    want = _tags(seqtag.load(models["pos"]), sents)
    for setting in ("cpu", "auto", None):
        nlp = _nlp(models["pos"], device=setting)
        comp = nlp.get_pipe("seqtag")
        assert nlp.config["components"]["seqtag"]["device"] == setting
        assert _doc_tags(nlp, sents) == want
        assert comp.tagger.device == comp.device == resolve_device("auto" if setting == "auto" else "cpu")


def test_a_device_name_that_is_no_device_is_refused_by_add_pipe(models: dict[str, Path]) -> None:
    for spec in ("gpu", "cuda:x", "auto:0", "CPU!"):
        with pytest.raises(DeviceError) as info:
            _nlp(models["pos"], device=spec)
        _one_line(info.value, spec)
        assert str(info.value).startswith("seqtag component 'seqtag': ")


@pytest.mark.parametrize("spec", [s for s in ("cuda", "cuda:7", "mps") if s in ABSENT])
def test_an_absent_device_is_one_line_where_the_tagger_is_loaded(models: dict[str, Path], tmp_path: Path,
                                                                  spec: str) -> None:
    nlp = _nlp(models["pos"], device=spec)  # the name is fine: nothing is loaded yet
    for use in (lambda: nlp("EU rejects German call"), lambda: nlp.initialize(),
                lambda: nlp.get_pipe("seqtag").tagger):
        with pytest.raises(DeviceError) as info:
            use()
        _one_line(info.value, spec)
        assert str(info.value).startswith("seqtag component 'seqtag': ")
        assert "--device" not in str(info.value)
    # a new tagger for spacy train: refused before it is built
    with pytest.raises(DeviceError):
        _nlp(None, task="pos", device=spec).initialize(lambda: [])


def test_the_default_follows_spacys_device(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``device`` null is thinc's current device: the GPU after spacy.require_gpu(), which is absent here."""
    import thinc.util

    if CUDA:
        pytest.skip("a CUDA device is here: spaCy's GPU would be used, not refused")
    monkeypatch.setattr(thinc.util, "get_torch_default_device", lambda: torch.device("cuda", 0))
    nlp = _nlp(models["pos"])
    with pytest.raises(DeviceError) as info:
        nlp("EU rejects German call")
    _one_line(info.value, "cuda:0")


def test_a_packaged_pipeline_carries_the_device_and_old_ones_load(models: dict[str, Path], tmp_path: Path) -> None:
    import spacy

    from seqtag.spacy_package import package_pipeline

    sents = _tokens("ner")
    want = [[(e.start, e.end, e.label) for e in p.entities] for p in seqtag.load(models["ner"]).predict(sents)]

    def ents(nlp: Any) -> list[list[tuple[int, int, str]]]:
        from spacy.tokens import Doc

        return [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(Doc(nlp.vocab, words=w) for w in sents)]

    auto = package_pipeline(models["ner"], tmp_path / "auto", device="auto")
    assert re.search(r'^device = "auto"$', (auto / "config.cfg").read_text(), re.M)
    nlp = spacy.load(auto)
    assert nlp.get_pipe("seqtag").tagger.device == resolve_device("auto") and ents(nlp) == want

    old = package_pipeline(models["ner"], tmp_path / "old")
    cfg = (old / "config.cfg").read_text()
    assert re.search(r"^device = null$", cfg, re.M)
    (old / "config.cfg").write_text(re.sub(r"^device = null\n", "", cfg, flags=re.M))  # saved before the setting
    assert "device" not in (old / "config.cfg").read_text()
    nlp = spacy.load(old)
    assert nlp.get_pipe("seqtag").cfg["device"] is None and ents(nlp) == want

    if "cuda:7" in ABSENT:  # packaged for another machine: written here, refused where it is loaded
        far = package_pipeline(models["ner"], tmp_path / "far", device="cuda:7")
        with pytest.raises(DeviceError) as info:
            spacy.load(far)
        _one_line(info.value, "cuda:7")


def test_every_tagger_the_component_gets_goes_to_its_device(models: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A tagger from bytes, or built for spacy train, is moved to the component's device before it is
    used (and before the optimizer is made); one loaded from a path is loaded there."""
    from spacy.tokens import Doc
    from spacy.training import Example

    placed: list[torch.device] = []
    to = Tagger.to
    monkeypatch.setattr(Tagger, "to", lambda self, device: (placed.append(device), to(self, device))[1])
    data = _nlp(models["pos"], device="cpu").get_pipe("seqtag").to_bytes()
    placed.clear()
    nlp = _nlp(None, device="auto")
    comp = nlp.get_pipe("seqtag")
    comp.from_bytes(data)
    assert placed == [resolve_device("auto")] and comp.tagger.device == resolve_device("auto")

    nlp = _nlp(None, task="pos", device="cpu", seqtag_config={"model": {"encoder": {"type": "lstm.v1",
                                                                                     "hidden_size": 4}}})
    comp = nlp.get_pipe("seqtag")
    words, tags = ["EU", "rejects", "German", "call"], ["PROPN", "VERB", "ADJ", "NOUN"]
    examples = [Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, tags=tags))]
    placed.clear()
    nlp.initialize(lambda: examples)
    assert placed == [torch.device("cpu")] and comp.tagger.device.type == "cpu"
    losses = nlp.update(examples)
    assert losses["seqtag"] > 0
    assert all(p.device.type == "cpu" for group in comp._trainer.optimizer.param_groups for p in group["params"])
