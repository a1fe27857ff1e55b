"""The registry: versioned names, duplicates, unknown names, entry points (lazy), autoload switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag import registry
from seqtag.config import apply_overrides, build_part, resolve
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
    assert info.distribution == "seqtag" and info.description.startswith("LSTM")
    assert {"word.v1", "char_cnn.v1", "char_lstm.v1", "pretrained.v1", "concat.v1"} <= set(registry.embeddings.names())
    assert {"softmax.v1", "crf.v1"} <= set(registry.heads.names())
    assert {"whitespace.v1", "spacy.v1", "pretokenized.v1"} <= set(registry.tokenizers.names())


def test_config_kwargs_are_checked_against_the_signature() -> None:
    with pytest.raises(ConfigError, match=r"encoder 'lstm.v1' takes no argument 'hidden'; it takes: hidden_size"):
        build_part("encoder", {"type": "lstm.v1", "hidden": 3}, input_dim=4)
    with pytest.raises(ConfigError, match=r"'hidden_size' must be int, got str '3'"):
        build_part("encoder", {"type": "lstm.v1", "hidden_size": "3"}, input_dim=4)
    with pytest.raises(ConfigError, match="'input_dim' is wired by the model"):
        resolve("encoder", {"type": "lstm.v1", "input_dim": 3})


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
