"""The documentation site: it builds with warnings as errors, its generated reference pages are up to date and
equal what the commands print, and every code block marked runnable runs.

A block is marked runnable by the line ``<!-- runnable -->`` right above its fence (``bash`` or ``python``;
see docs/index.md). The marked blocks of a page run in order in one fresh folder that holds
``corpora/sample_ner``, ``corpora/sample_pos`` and ``models/ner`` (a small NER tagger trained on the sample),
with the environment's ``seqtag`` and ``python`` first on the PATH and the hub offline: each bash block in a
bash of its own, the python blocks one after another in one Python process, each in a fresh namespace. A
block fails the test when it exits with anything but 0 (or raises).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARK = "<!-- runnable -->"
BLOCK = re.compile(r"^<!-- runnable -->\n```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
LANGS = ("bash", "python")
BIN = Path(sys.executable).parent


def pages() -> list[Path]:
    """Every markdown page under docs/ (the site's build folder left out)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def runnable_blocks(path: Path) -> list[tuple[int, str, str]]:
    """The blocks of ``path`` marked runnable, as ``(line of the fence, language, code)``, in page order."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group("lang"), m.group("code")) for m in BLOCK.finditer(text)]


def block_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SEQTAG_CORPORA"}  # the blocks use the sample corpora
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", SEQTAG_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=block_env(), capture_output=True, text=True, timeout=timeout)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


PAGES_WITH_BLOCKS = [p for p in pages() if runnable_blocks(p)]


# Runs a page's blocks in order in the current folder: bash blocks in a bash of their own, python blocks in
# this one process (torch is imported once per page), each in a fresh namespace, under the page's line numbers.
DRIVER = """\
import json, subprocess, sys, traceback

for path, line, lang, code in json.load(open(sys.argv[1], encoding="utf-8")):
    where = f"{path}:{line}"
    if lang == "bash":
        rc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code]).returncode
    else:
        try:
            exec(compile("\\n" * line + code, path, "exec"), {"__name__": "__main__"})
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:
            traceback.print_exc()
            rc = 1
    sys.stdout.flush()
    if rc != 0:
        print(f"FAILED: the {lang} block at {where} exited {rc}", file=sys.stderr, flush=True)
        sys.exit(1)
"""


def run_blocks(blocks: list[tuple[str, int, str, str]], cwd: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """Run ``(page, line, language, code)`` blocks in order in ``cwd`` (see :data:`DRIVER`)."""
    (scratch / "driver.py").write_text(DRIVER, encoding="utf-8")
    (scratch / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    return run([sys.executable, str(scratch / "driver.py"), str(scratch / "blocks.json")], cwd)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, ner_model: Path) -> Path:
    """The folder each page's blocks start from: the sample corpora and a small NER tagger in models/ner."""
    ws = tmp_path_factory.mktemp("docs-workspace")
    for name in ("sample_ner", "sample_pos"):
        shutil.copytree(ROOT / "corpora" / name, ws / "corpora" / name)
    shutil.copytree(ner_model, ws / "models" / "ner", ignore=shutil.ignore_patterns("checkpoint", ".seqtag.lock"))
    return ws


# -- the marked blocks -------------------------------------------------------------------------------------

def test_every_mark_is_on_a_runnable_block() -> None:
    """A ``<!-- runnable -->`` that is not right above a bash or python fence would silently test nothing."""
    for path in pages():
        text = path.read_text(encoding="utf-8")
        marks = len(re.findall(f"^{re.escape(MARK)}[ \t]*$", text, re.M))
        blocks = runnable_blocks(path)
        assert marks == len(blocks), f"{path.relative_to(ROOT)}: {MARK} must be the line right above a code fence"
        for line, lang, _ in blocks:
            assert lang in LANGS, f"{path.relative_to(ROOT)}:{line}: a runnable block is bash or python, not {lang!r}"


def test_the_pages_that_promise_runnable_code_have_it() -> None:
    names = {p.relative_to(DOCS).as_posix(): len(runnable_blocks(p)) for p in PAGES_WITH_BLOCKS}
    for page in ("quickstart.md", "rnn.md", "concepts.md", "model-format.md", "spacy.md", "data.md"):
        assert names.get(page, 0) >= 1, f"docs/{page} has no runnable block"
    assert names["quickstart.md"] >= 4


@pytest.mark.parametrize("page", PAGES_WITH_BLOCKS, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_runnable_blocks_run(page: Path, workspace: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    shutil.copytree(workspace, cwd)
    rel = page.relative_to(ROOT).as_posix()
    res = run_blocks([(rel, line, lang, code) for line, lang, code in runnable_blocks(page)], cwd, tmp_path)
    assert res.returncode == 0, f"--- stdout\n{tail(res.stdout)}\n--- stderr\n{tail(res.stderr, 40)}"


def test_a_failing_block_fails(tmp_path: Path) -> None:
    """The runner runs the marked blocks in order, stops at one that fails and names it by page and line."""
    page = tmp_path / "page.md"
    page.write_text(f"# t\n\n{MARK}\n```bash\necho one > out.txt\n```\n\n{MARK}\n```python\n"
                    "assert open('out.txt').read() == 'one\\n'\nraise KeyError('two')\n```\n\n"
                    f"```python\nnot marked\n```\n\n{MARK}\n```bash\necho three\n```\n", encoding="utf-8")
    blocks = runnable_blocks(page)
    assert [(line, lang) for line, lang, _ in blocks] == [(4, "bash"), (9, "python"), (19, "bash")]
    res = run_blocks([("page.md", line, lang, code) for line, lang, code in blocks], tmp_path, tmp_path)
    assert res.returncode == 1
    assert 'File "page.md", line 11' in res.stderr and "KeyError: 'two'" in res.stderr
    assert "FAILED: the python block at page.md:9 exited 1" in res.stderr
    assert "three" not in res.stdout


# -- the generated reference pages ---------------------------------------------------------------------------

def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_up_to_date() -> None:
    """``python docs/generate.py --check``, in this process."""
    assert load_generator().main(["--check"]) == 0, "docs/reference is out of date: run `python docs/generate.py`"


def test_generator_check_and_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    generate = load_generator()
    monkeypatch.setattr(generate, "REFERENCE", tmp_path)
    monkeypatch.setattr(generate, "PAGES", {"one.md": lambda: "# One\n", "two.md": lambda: "# Two\n"})
    assert generate.main(["--check"]) == 1  # not written yet
    assert "one.md" in capsys.readouterr().err
    assert generate.main([]) == 0
    assert (tmp_path / "two.md").read_text(encoding="utf-8") == "# Two\n"
    assert generate.main(["--check"]) == 0
    (tmp_path / "two.md").write_text("# Two, edited by hand\n", encoding="utf-8")
    assert generate.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "two.md" in err and "one.md" not in err


def cli_sections() -> dict[str, str]:
    """``{"seqtag train": help text, ...}`` as docs/reference/cli.md shows them."""
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^## (seqtag[\w -]*)\n\n```text\n(.*?)\n```$", text, re.M | re.S)}


def command_names() -> set[str]:
    """``seqtag`` and each of its commands (``seqtag train``...), as the click group holds them now."""
    import click

    from seqtag.cli import main

    names = {"seqtag"}

    def walk(group: click.Group, prefix: str) -> None:
        ctx = click.Context(group, info_name=prefix)
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                names.add(f"{prefix} {name}")
                if isinstance(cmd, click.Group):
                    walk(cmd, f"{prefix} {name}")

    walk(main, "seqtag")
    return names


def test_cli_reference_is_what_the_commands_print() -> None:
    sections = cli_sections()
    assert set(sections) == command_names()
    env = {**block_env(), "COLUMNS": "80"}
    for name, shown in sections.items():
        res = subprocess.run([str(BIN / "seqtag"), *name.split()[1:], "--help"], env=env, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.rstrip("\n") == shown, f"docs/reference/cli.md: {name} differs from `{name} --help`"


# -- the site ---------------------------------------------------------------------------------------------

SITE_TEST = "test_site_builds_without_warnings"


@pytest.fixture(scope="module", autouse=True)
def site_build(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The site's build, started with this module so that it runs beside the blocks (the test waits for it)."""
    wanted = any(item.name == SITE_TEST for item in request.session.items)
    if not wanted or any(importlib.util.find_spec(m) is None for m in ("sphinx", "myst_parser", "furo")):
        yield None
        return
    tmp = tmp_path_factory.mktemp("site")
    proc = subprocess.Popen([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                             "-d", str(tmp / "doctrees"), str(DOCS), str(tmp / "site")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=block_env())
    yield proc, tmp / "site"
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_site_builds_without_warnings(site_build: Any) -> None:
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module)
    proc, out = site_build
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"the site does not build cleanly:\n{tail(stderr, 60)}"
    built = {p.relative_to(out).with_suffix(".md").as_posix() for p in out.rglob("*.html")}
    missing = [p.relative_to(DOCS).as_posix() for p in pages() if p.relative_to(DOCS).as_posix() not in built]
    assert not missing, f"pages not in the site: {missing}"
    cli = (out / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "Usage: seqtag train [OPTIONS]" in cli
