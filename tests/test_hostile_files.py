"""Hostile files and an unreachable hub: every case is one ``error:`` line, exit status 2, no traceback.

A ``.parquet`` that is not Parquet, rows whose tokens are a string, configs nested 100,000 levels
deep or holding 5,000-digit numbers, JSON that is not an object, a hub endpoint that accepts a
connection and then fails TLS or never answers. Property tests feed random configs and random bytes
to :func:`load_config`, :func:`build_config` and :func:`load_corpus`: a result or a one-line
:class:`SeqtagError`, never another exception.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtag.config import MAX_DEPTH, load_config
from seqtag.data import load_corpus
from seqtag.errors import ConfigError, DataError, HubUnavailableError, ModelLoadError, SeqtagError
from seqtag.jsonio import read_json_object

from .conftest import SAMPLES
from .test_bad_input import TINY, fails

NER = SAMPLES / "sample_ner"


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_toml(depth: int) -> str:
    return "{a = " * depth + "1" + "}" * depth


def write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    cfg.write_text(TINY)
    return cfg


def train(config: Path | None, data: Path | str, out: Path, *more: str) -> list[Any]:
    return ["train", *(["--config", config] if config else []), "--dataset", data, "-o", out, "--no-progress", *more]


# -- datasets-backed corpus files ---------------------------------------------------------------------


@pytest.mark.parametrize("content", [os.urandom(300), b"Lucy B-PER\nlives O\n", b""], ids=["random", "text", "empty"])
def test_a_parquet_file_that_is_not_parquet(tiny: Path, ner_model: Path, tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "x.parquet"
    f.write_bytes(content)
    fails(train(tiny, f, tmp_path / "m"), f"error: {f}: not a readable Parquet file (ArrowInvalid: ")
    fails(["evaluate", ner_model, "--dataset", f], f"{f}: not a readable Parquet file")


@pytest.mark.parametrize("columns, expected", [
    ({"tokens": ["Lucy lives in Oslo"], "tags": [["B-PER", "O", "O", "B-LOC"]]},
     "row 1: 'tokens' must be a list of strings, got str 'Lucy lives in Oslo'"),
    ({"tokens": [["Lucy", "lives"]], "tags": ["B-PER O"]},
     "row 1: 'tags' must be a list of strings (or label ids), got str 'B-PER O'"),
    ({"tokens": [["Lucy"], ["Lucy", "lives"]], "tags": [["B-PER"], ["B-PER"]]}, "row 2: 2 tokens but 1 tags in 'tags'"),
    ({"tokens": [["Lucy"], None], "tags": [["B-PER"], ["O"]]}, "row 2: 'tokens' must be a list of strings, got null"),
    ({"tokens": [["Lucy", None]], "tags": [["B-PER", "O"]]},
     "row 1: 'tokens' must be a list of strings; it holds null"),
    ({"tokens": [["Lucy"]], "tags": [[1.5]]}, "row 1: 'tags' must be a list of strings (or label ids); it holds float"),
], ids=["string-tokens", "string-tags", "lengths", "null-row", "null-token", "float-tag"])
def test_parquet_rows_that_are_not_lists_of_strings(tiny: Path, tmp_path: Path, columns: dict, expected: str) -> None:
    f = write_parquet(tmp_path / "x.parquet", columns)
    fails(train(tiny, f, tmp_path / "m"), f"error: {f}: {expected}")


def test_parquet_label_ids_outside_the_label_names(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER"]))})
    datasets.Dataset.from_dict({"tokens": [["Lucy"]], "tags": [[1]]}, features=feats).to_parquet(
        str(tmp_path / "x.parquet"))
    table = pq.read_table(str(tmp_path / "x.parquet"))  # the same label names, an id past them
    table = table.set_column(1, "tags", pa.array([[7]]))
    pq.write_table(table, str(tmp_path / "x.parquet"))
    with pytest.raises(DataError, match=r"row 1: 'tags' holds a label id outside its 2 label names"):
        load_corpus(str(tmp_path / "x.parquet"), "ner")


def test_parquet_strings_that_are_not_utf8(tiny: Path, tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, 2], dtype=np.int32).tobytes())
    latin = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xe9t")])  # Latin-1 bytes
    tokens = pa.ListArray.from_arrays(pa.array([0, 1], pa.int32()), latin)
    f = write_parquet(tmp_path / "x.parquet", {"tokens": tokens, "tags": [["O"]]})
    fails(train(tiny, f, tmp_path / "m"), f"error: {f}: the 'tokens' and 'tags' columns cannot be read "
          "(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9")


@pytest.mark.parametrize("line, expected", [
    ('{"tokens": "Lucy lives", "tags": ["B-PER", "O"]}',
     ":1: 'tokens' must be a list of strings, got str 'Lucy lives'"),
    ('{"tokens": ["Lucy"], "ner_tags": "B-PER"}', ":1: 'ner_tags' must be a list of strings (or label ids), got str"),
    ('[1, 2]', ":1: expected an object with 'tokens' and a tag list, found an array"),
    (deep_json(100_000), ":1: JSON nested too deeply to read"),
    ('{"tokens": [' + "9" * 5000 + "]}", ":1: JSON that cannot be read (a number with more than 4300 digits)"),
], ids=["string-tokens", "string-tags", "array", "deep", "huge-number"])
def test_json_lines_that_are_not_sentences(tiny: Path, tmp_path: Path, line: str, expected: str) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text(line + "\n")
    fails(train(tiny, f, tmp_path / "m"), f"error: {f}{expected}")


def test_a_damaged_save_to_disk_folder(tiny: Path, tmp_path: Path) -> None:
    import datasets

    ds = datasets.Dataset.from_dict({"tokens": [["Lucy"]], "tags": [["B-PER"]]})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "dd" / "dataset_dict.json").write_text("{not json")
    fails(train(tiny, tmp_path / "dd", tmp_path / "m"), f"{tmp_path / 'dd'}: not a dataset folder written by "
          "save_to_disk (JSONDecodeError: ")
    ds.save_to_disk(str(tmp_path / "one"))
    (tmp_path / "one" / "dataset_info.json").write_bytes(b"\xff\xfe garbage")
    fails(train(tiny, tmp_path / "one", tmp_path / "m"), f"{tmp_path / 'one'}: not a dataset folder written by")


# -- configs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, expected", [
    ("deep.json", '{"model": ' + deep_json(100_000) + "}", "deep.json: JSON nested too deeply to read"),
    ("deep.toml", "a = " + deep_json(100_000), "deep.toml: not a readable TOML config: nested too deeply"),
    ("tables.toml", "a = " + deep_toml(50_000), "tables.toml: not a readable TOML config: nested too deeply"),
    ("dotted.toml", "[training]\n" + "a." * 5000 + "b = 1\n",
     f"dotted.toml: tables and arrays nested more than {MAX_DEPTH} deep"),
    ("deep1k.json", '{"model": {"encoder": {"x": ' + deep_json(900) + "}}}",
     f"deep1k.json: tables and arrays nested more than {MAX_DEPTH} deep"),
    ("huge.toml", "[training]\nlr = " + "9" * 5000 + "\n", "huge.toml: not a readable TOML config: a number with more "
     "than 4300 digits"),
    ("huge.json", '{"training": {"lr": ' + "9" * 5000 + "}}", "huge.json: JSON that cannot be read (a number with"),
    ("array.json", "[1, 2]", "array.json: expected a JSON object, found an array"),
    ("type.toml", '[model.encoder]\ntype = ["lstm.v1"]\n',
     "the encoder 'type' must be a registered part name (a string), got list ['lstm.v1']"),
], ids=["deep-json", "deep-toml-arrays", "deep-toml-tables", "dotted-keys", "json-900-deep", "huge-toml-int",
        "huge-json-int", "json-array", "type-not-a-string"])
def test_hostile_config_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    cfg = tmp_path / name
    cfg.write_text(text, encoding="utf-8")
    fails(train(cfg, NER, tmp_path / "m"), expected)


def test_config_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    cfg = tmp_path / "latin.toml"
    cfg.write_bytes(b'task = "ner"\n# caf\xe9\n')
    fails(train(cfg, NER, tmp_path / "m"), f"error: {cfg}:2: bytes that are not UTF-8 at column 6 (0xe9); "
          "save the config as UTF-8")
    cfg = tmp_path / "latin.json"
    cfg.write_bytes(b'{"task": "caf\xe9"}')
    fails(train(cfg, NER, tmp_path / "m"), f"error: {cfg}:1: bytes that are not UTF-8")


def test_set_values_nested_too_deep_or_too_long(tmp_path: Path) -> None:
    fails(train(None, NER, tmp_path / "m", "--set", "model.encoder.x=" + deep_json(500)),
          f"error: --set model.encoder.x: tables and arrays nested more than {MAX_DEPTH} deep")
    fails(train(None, NER, tmp_path / "m", "--set", "model.encoder.x=" + deep_json(50_000)),
          "encoder 'lstm.v1' takes no argument 'x'")  # not JSON or TOML to Python: kept as text
    fails(train(None, NER, tmp_path / "m", "--set", "model.encoder.hidden_size=" + "9" * 5000),
          "'hidden_size' must be int, got str '999")


def test_read_json_object_answers_every_damage_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "meta.json"
    cases = {b'{"a": ': "not valid JSON (Expecting value at column 7)",
             b"[1]": "expected a JSON object, found an array",
             deep_json(100_000).encode(): "JSON nested too deeply to read",
             b'{"a": "\xe9"}': "bytes that are not UTF-8",
             b"\xef\xbb\xbf" + b'{"a": ' + b"9" * 5000 + b"}": "a number with more than 4300 digits"}
    for raw, expected in cases.items():
        f.write_bytes(raw)
        for cls in (ModelLoadError, ConfigError, DataError):
            with pytest.raises(cls) as err:
                read_json_object(f, cls)
            assert str(err.value).startswith(f"{f}") and expected in str(err.value) and "\n" not in str(err.value)
    f.write_bytes(b'\xef\xbb\xbf{"a": [1]}')
    assert read_json_object(f, ModelLoadError) == {"a": [1]}
    with pytest.raises(ModelLoadError, match="nothing.json: missing"):
        read_json_object(tmp_path / "nothing.json", ModelLoadError)


# -- the hub, out of reach ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """Local TCP servers that accept a connection, then answer TLS with garbage, close it, or never answer."""
    socks: list[socket.socket] = []
    held: list[socket.socket] = []
    ports = {}

    def serve(sock: socket.socket, mode: str) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed at teardown
                return
            if mode == "garbage":
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot TLS at all\n")
                except OSError:
                    pass
                conn.close()
            elif mode == "close":
                conn.close()
            else:
                held.append(conn)  # "silent": keep it open, say nothing

    for mode in ("garbage", "close", "silent"):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        socks.append(sock)
        ports[mode] = sock.getsockname()[1]
        threading.Thread(target=serve, args=(sock, mode), daemon=True).start()
    yield ports
    for s in socks + held:
        s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("mode, reason", [
    ("garbage", "accepted the connection but the TLS handshake failed"),
    ("close", "accepted the connection but the TLS handshake failed"),
    ("silent", "accepted the connection but did not answer the TLS handshake"),
    ("refused", "refused the connection"),
    ("dns", "the name nonexistent.invalid does not resolve (DNS)"),
])
def test_the_probe_names_each_connection_failure(servers: dict[str, int], monkeypatch: pytest.MonkeyPatch,
                                                 mode: str, reason: str) -> None:
    from seqtag import hub

    endpoint = "https://nonexistent.invalid" if mode == "dns" else \
        f"https://127.0.0.1:{servers.get(mode) or free_port()}"
    monkeypatch.setattr(hub, "hub_endpoint", lambda: endpoint)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    t = time.monotonic()
    assert reason in (hub.probe_hub(timeout=1.0) or "")
    assert time.monotonic() - t < 3.0


def hub_cli(endpoint: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "", "HF_DATASETS_OFFLINE": "0",
           "OMP_NUM_THREADS": "1"}
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "seqtag.cli", "train", "--dataset", "someowner/somename", "-o",
                          str(tmp_path / "m"), "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    return res, time.monotonic() - t


@pytest.mark.parametrize("mode", ["garbage", "silent", "dns"])
def test_an_unreachable_hub_is_one_line_within_seconds(servers: dict[str, int], tmp_path: Path, mode: str) -> None:
    """Before: ten ``Retrying`` lines over 25 s (TLS failing) or longer (no answer), then the error."""
    endpoint = "https://nonexistent.invalid" if mode == "dns" else f"https://127.0.0.1:{servers[mode]}"
    res, elapsed = hub_cli(endpoint, tmp_path)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: the Hugging Face hub is out of reach (") and "'someowner/somename'" in line
    assert "HF_HUB_OFFLINE=1 for a cached copy" in line and "Traceback" not in res.stderr
    assert elapsed < 15, elapsed  # the probe's deadline is 4 s; the rest is starting Python and torch


def test_a_connection_error_from_load_dataset_is_one_line_with_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from seqtag import data

    def refuse(*args: Any, **kwargs: Any) -> None:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError as exc:
            raise ConnectionError("Couldn't reach 'someowner/somename' on the Hub (LocalEntryNotFoundError)") from exc

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(data, "probe_hub", lambda: None)  # the hub answered the probe, then failed
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(HubUnavailableError) as err:
        load_corpus("someowner/somename", "ner")
    msg = err.value.one_line()
    assert msg == str(err.value) and msg.startswith("the Hugging Face hub is out of reach while loading dataset "
                                                    "'someowner/somename' (Couldn't reach")
    assert msg.endswith("HF_HUB_OFFLINE=1 for a cached copy")

    def missing(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError("Dataset 'someowner/somename' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(HubUnavailableError, match="is not available from the hub: Dataset 'someowner/somename' "
                                                  "doesn't exist"):
        load_corpus("someowner/somename", "ner")


# -- property tests: random configs and random corpus files --------------------------------------------

PROPS = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Raw:
    """Text written into a config as it is (a 5,000-digit number)."""

    def __init__(self, text: str) -> None:
        self.json = self.toml = text


class Deep:
    """Arrays (or tables) nested ``depth`` deep; a fraction is that part of the recursion limit when written.

    Hypothesis raises the recursion limit while a test runs, so a fixed depth that exhausts it in
    the CLI might not in the test: relative depths exhaust it in both.
    """

    def __init__(self, depth: float, tables: bool) -> None:
        self.depth, self.tables = depth, tables

    def render(self, toml: bool) -> str:
        n = self.depth if isinstance(self.depth, int) else int(self.depth * sys.getrecursionlimit())
        if not self.tables:
            return deep_json(n)
        return deep_toml(n) if toml else '{"a": ' * n + "1" + "}" * n


def render(value: Any, toml: bool) -> str:
    """``value`` as a JSON value or a TOML inline value (a ``None`` is an empty string in TOML)."""
    if isinstance(value, Raw):
        return value.toml if toml else value.json
    if isinstance(value, Deep):
        return value.render(toml)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return '""' if toml else "null"
    if isinstance(value, float):
        return repr(value) if toml else json.dumps(value)
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v, toml) for v in value) + "]"
    items = [f"{json.dumps(str(k))}{' =' if toml else ':'} {render(v, toml)}" for k, v in value.items()]
    return "{" + ", ".join(items) + "}"


def render_config(cfg: dict[str, Any], toml: bool) -> str:
    if not toml:
        return render(cfg, False)
    return "".join(f"{json.dumps(str(k))} = {render(v, True)}\n" for k, v in cfg.items())


wrong_type = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                       st.text(max_size=8), st.sampled_from(["lstm.v1", "concat.v1", "crf.v1", "stack.v1", "adam"]),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                            max_size=2))
# each kind of hostile value is drawn about as often as the others, so 60 examples meet them all
HOSTILE = {
    "deep": st.builds(Deep, st.sampled_from([MAX_DEPTH + 1, 0.3, 0.6, 0.9, 100_000]), st.booleans()),
    "huge number": st.builds(lambda n: Raw("9" * n), st.sampled_from([4300, 4301, 20_000])),
    "huge string": st.builds(lambda n: "x" * n, st.sampled_from([10_000, 1_000_000])),
    "wrong type": wrong_type,
    "nested": st.recursive(wrong_type, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "parts", "x", "hidden_size"]) | st.text(max_size=4), inner, max_size=3),
        max_leaves=6),
}


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, prefix + (key,))


@st.composite
def hostile_configs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A task's default config with a few values replaced by hostile ones (or added beside them)."""
    from seqtag.trainer import default_config

    task = draw(st.sampled_from(["ner", "pos"]))
    cfg = default_config(task)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(cfg) if p]))
        node = cfg
        for key in path[:-1]:
            node = node[key]
        key = draw(st.sampled_from(["type", "x", "parts"])) if isinstance(node, dict) and draw(st.booleans()) \
            else path[-1]
        node[key] = draw(HOSTILE[draw(st.sampled_from(sorted(HOSTILE)))])
    return task, cfg


def _one_line(exc: SeqtagError) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg and "\r" not in msg and msg == exc.one_line(), msg[:300]


@PROPS
@given(hostile_configs(), st.booleans())
def test_any_config_builds_or_is_one_seqtag_error_line(case: tuple[str, dict[str, Any]], toml: bool) -> None:
    from seqtag.trainer import build_config

    task, cfg = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("config.toml" if toml else "config.json")
        path.write_text(render_config(cfg, toml), encoding="utf-8", errors="surrogatepass")
        try:
            build_config(task, load_config(path))
        except SeqtagError as exc:
            _one_line(exc)


def _parquet_bytes() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"tokens": [["Lucy", "lives"], ["Oslo"]], "tags": [["B-PER", "O"], ["B-LOC"]]}), buf)
    return buf.getvalue()


PARQUET = _parquet_bytes()
SUFFIXES = [".conll", ".conllu", ".jsonl", ".json", ".parquet"]


@st.composite
def corpus_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid Parquet file with a few bytes changed (past the checks of random bytes)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    raw = bytearray(PARQUET)
    for pos, byte in draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1,
                                   max_size=4)):
        raw[pos] = byte
    return bytes(raw)


@PROPS
@given(st.sampled_from(SUFFIXES), corpus_bytes(), st.sampled_from(["ner", "pos"]))
def test_any_bytes_as_a_corpus_file_load_or_are_one_seqtag_error_line(suffix: str, raw: bytes, task: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_bytes(raw)
        try:
            corpus = load_corpus(str(path), task, warn=lambda m: None)
        except SeqtagError as exc:
            _one_line(exc)
            assert str(exc).startswith(str(path)), str(exc)[:300]
            return
    assert len(corpus.split("data")) >= 1
