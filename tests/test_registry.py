"""The registry: versioned names, duplicates, unknown names, entry points (lazy), autoload switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

from seqtag import registry
from seqtag.config import apply_overrides, build_part, check_kwargs, resolve
from seqtag.errors import ConfigError, RegistryError

FIXTURE = Path(__file__).parent / "fixtures" / "seqtag-testplugin"


def test_duplicate_name_is_an_error() -> None:
    reg = registry.Registry("encoder", "seqtag.encoders")
    reg.register("mine.v1", object)
    with pytest.raises(RegistryError, match=r"duplicate encoder name 'mine.v1'.*'mine.v2'"):
        reg.register("mine.v1", int)


def test_names_carry_a_version() -> None:
    reg = registry.Registry("encoder", "seqtag.encoders")
    with pytest.raises(RegistryError, match="end in a version"):
        reg.register("mine", object)


def test_unknown_name_lists_names_and_closest_match() -> None:
    with pytest.raises(RegistryError) as err:
        registry.encoders.get("lstmm.v1")
    msg = str(err.value)
    assert "unknown encoder 'lstmm.v1'" in msg
    assert "gru.v1" in msg and "rnn.v1" in msg
    assert "Did you mean 'lstm.v1'?" in msg


def test_builtins_are_registered_with_their_distribution() -> None:
    info = registry.encoders.info("lstm.v1")
    assert info.distribution == registry.BUILTIN_DIST and info.description.startswith("LSTM")
    assert {"word.v1", "char_cnn.v1", "char_lstm.v1", "pretrained.v1", "concat.v1"} <= set(registry.embeddings.names())
    assert {"softmax.v1", "crf.v1"} <= set(registry.heads.names())
    assert {"whitespace.v1", "spacy.v1", "pretokenized.v1"} <= set(registry.tokenizers.names())


# The built-in parts, by kind. Adding, removing or renaming a built-in must update this list (and the
# docs: docs/configuration.md's table of parts); a renamed part also needs its old name kept loadable.
BUILTINS = {
    "tokenizer": ["pretokenized.v1", "spacy.v1", "whitespace.v1"],
    "embedding": ["char_cnn.v1", "char_lstm.v1", "concat.v1", "pretrained.v1", "word.v1"],
    "encoder": ["gru.v1", "identity.v1", "lstm.v1", "rnn.v1", "stack.v1"],
    "head": ["crf.v1", "softmax.v1"],
}


def test_builtin_names_per_kind_are_the_documented_ones() -> None:
    found = {kind: sorted(info.name for info in reg.all() if info.distribution == registry.BUILTIN_DIST)
             for kind, reg in registry.REGISTRIES.items()}
    assert found == BUILTINS


def test_kinds_groups_and_wired_arguments_are_defined_once() -> None:
    assert registry.KINDS == ("tokenizer", "embedding", "encoder", "head") == tuple(registry.REGISTRIES)
    assert [registry.get_registry(k).group for k in registry.KINDS] == [
        "seqtag.tokenizers", "seqtag.embeddings", "seqtag.encoders", "seqtag.heads"]
    assert registry.WIRED["encoder"] == ("input_dim",) and registry.WIRED["head"] == ("input_dim", "labels", "scheme")
    assert set(registry.NETWORK_KINDS) < set(registry.KINDS)
    with pytest.raises(RegistryError, match="unknown part kind 'decoder'; kinds: tokenizer, embedding"):
        registry.get_registry("decoder")


def test_walk_parts_visits_nested_parts_depth_first() -> None:
    model = {"dropout": 0.5, "tokenizer": {"type": "whitespace.v1"},
             "embedding": {"type": "concat.v1", "parts": [
                 {"type": "word.v1"}, {"type": "concat.v1", "parts": [{"type": "char_cnn.v1"}]}]},
             "encoder": {"type": "stack.v1", "layers": [{"type": "lstm.v1"}, {"type": "gru.v1"}]},
             "head": {"type": "crf.v1"}}
    walked = [(kind, name) for kind, name, _ in registry.walk_parts(model)]
    assert walked == [("tokenizer", "whitespace.v1"), ("embedding", "concat.v1"), ("embedding", "word.v1"),
                      ("embedding", "concat.v1"), ("embedding", "char_cnn.v1"), ("encoder", "stack.v1"),
                      ("encoder", "lstm.v1"), ("encoder", "gru.v1"), ("head", "crf.v1")]
    # slots that are no table, a type that is no string, nested parts that are no list: passed over
    odd = {"tokenizer": 3, "embedding": {"type": 7}, "encoder": {"type": "stack.v1", "layers": "x"}}
    assert [(k, n) for k, n, _ in registry.walk_parts(odd)] == [("encoder", "stack.v1")]
    with pytest.raises(RegistryError, match="unknown encoder 'nope.v1'"):
        list(registry.walk_parts({"encoder": {"type": "nope.v1"}}))


def test_registries_are_generic_in_their_part_type() -> None:
    from seqtag.encoders import Encoder

    factory = registry.encoders.get("lstm.v1")
    assert isinstance(factory, type) and issubclass(factory, Encoder)
    assert registry.Registry[Encoder]("encoder", "seqtag.encoders").group == "seqtag.encoders"


def test_config_kwargs_are_checked_against_the_signature() -> None:
    with pytest.raises(ConfigError, match=r"encoder 'lstm.v1' takes no argument 'hidden'; it takes: hidden_size"):
        build_part("encoder", {"type": "lstm.v1", "hidden": 3}, input_dim=4)
    with pytest.raises(ConfigError, match=r"'hidden_size' must be int, got str '3'"):
        build_part("encoder", {"type": "lstm.v1", "hidden_size": "3"}, input_dim=4)
    with pytest.raises(ConfigError, match="'input_dim' is wired by the model"):
        resolve("encoder", {"type": "lstm.v1", "input_dim": 3})


def test_argument_types_come_from_the_real_annotations(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^encoder 'lstm.v1': 'hidden_size' must be int, got str 'big'$"):
        build_part("encoder", {"type": "lstm.v1", "hidden_size": "big"}, input_dim=4)
    with pytest.raises(ConfigError, match=r"'bidirectional' must be bool, got int 1"):
        build_part("encoder", {"type": "lstm.v1", "bidirectional": 1}, input_dim=4)
    reg = registry.Registry("encoder", "seqtag.encoders")
    monkeypatch.setattr(registry, "REGISTRIES", {**registry.REGISTRIES, "encoder": reg})

    class Part:
        """A part whose annotations are text, one naming what only a type checker would import."""

        def __init__(self, input_dim: int, width: int | None = None, names: Sequence[str] = (),
                     other: NotImportedHere = None) -> None:  # type: ignore[name-defined] # noqa: F821
            pass

    reg.register("annotated.v1", Part)
    with pytest.raises(ConfigError, match=r"'width' must be int \| None, got float 1.5"):
        check_kwargs("encoder", {"type": "annotated.v1", "width": 1.5})
    with pytest.raises(ConfigError, match=r"'names' must be Sequence\[str\], got str 'ab'"):
        check_kwargs("encoder", {"type": "annotated.v1", "names": "ab"})
    # what cannot be resolved is not checked; the other arguments still are
    assert check_kwargs("encoder", {"type": "annotated.v1", "width": None, "names": ["a"], "other": 3})[1] == {
        "width": None, "names": ["a"], "other": 3}


def test_no_eval_in_the_package() -> None:
    import ast

    root = Path(__file__).parent.parent / "seqtag"
    calls = [f"{path.relative_to(root)}:{node.lineno}" for path in root.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec")]
    assert calls == []


def test_resolve_fills_every_default_recursively() -> None:
    cfg = resolve("embedding", {"type": "concat.v1", "parts": [{"type": "word.v1", "dim": 7}, {"type": "char_cnn.v1"}]})
    word, chars = cfg["parts"]
    assert word["dim"] == 7 and word["min_freq"] == 1 and word["lowercase"] is True
    assert chars["filters"] == 50 and chars["kernel_size"] == 3


def test_overrides_replace_a_slot_when_its_type_changes() -> None:
    base = {"model": {"encoder": {"type": "lstm.v1", "hidden_size": 9}}}
    out = apply_overrides(base, ["model.encoder.type=gru.v1", "model.encoder.num_layers=2", "training.lr=0.1"])
    assert out["model"]["encoder"] == {"type": "gru.v1", "num_layers": 2}
    assert out["training"]["lr"] == 0.1
    with pytest.raises(ConfigError, match="expected slot.key=value"):
        apply_overrides(base, ["model.encoder.type"])


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_importing_seqtag_and_the_registry_does_not_import_torch() -> None:
    res = _run("import sys, seqtag, seqtag.registry, seqtag.errors, seqtag.labels, seqtag.tokenizers\n"
               "print('torch' in sys.modules)", {})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test plugin installed into its own site folder, apart from seqtag."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(FIXTURE)], check=True, capture_output=True, timeout=300)
    return site


@pytest.mark.plugins
def test_entry_point_part_is_found_by_name_lazily(plugin_site: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code = (
        "import json, torch\n"
        "from seqtag import registry\n"
        "from seqtag.config import build_part\n"
        "info = registry.encoders.info('reverse_lstm.v1')\n"
        "enc = build_part('encoder', {'type': 'reverse_lstm.v1', 'hidden_size': 3}, input_dim=4)\n"
        "y = enc(torch.randn(2, 5, 4), torch.tensor([[1]*5, [1]*2 + [0]*3]).bool())\n"
        "import os\n"
        "before = os.path.exists(os.environ['SEQTAG_TEST_MARKER'])\n"
        "registry.encoders.all()\n"
        "after = os.path.exists(os.environ['SEQTAG_TEST_MARKER'])\n"
        "print(json.dumps([info.distribution, info.version, list(y.shape), before, after]))\n"
    )
    res = _run(code, {"PYTHONPATH": str(plugin_site), "SEQTAG_TEST_MARKER": str(marker)})
    assert res.returncode == 0, res.stderr
    dist, version, shape, before, after = json.loads(res.stdout)
    assert (dist, version, shape) == ("seqtag-testplugin", "0.0.1", [2, 5, 6])
    assert before is False and after is True  # one name loads one entry point; listing loads all


@pytest.mark.plugins
def test_cli_plugins_lists_the_plugin_and_autoload_can_be_turned_off(plugin_site: Path) -> None:
    cmd = [sys.executable, "-m", "seqtag.cli", "plugins"]
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "reverse_lstm.v1" in ln)
    assert "seqtag-testplugin" in line and "reversed" in line
    env["SEQTAG_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "reverse_lstm.v1" not in res.stdout and "lstm.v1" in res.stdout
