"""Hostile ``seqtag predict`` input: a line of any length, a line the tokenizer cannot take, a column file
whose name does not say so, and a terminal that waits for its answer. Nothing is lost: output records
match input lines, and each problem is one line on standard error."""

from __future__ import annotations

import json
import os
import pty
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from seqtag.cli import main
from seqtag.errors import ConfigError
from seqtag.predict_io import SNIFF_LINES, LineTokenizer, read_conll_blocks, sniff_format
from seqtag.tokenizers import SpacyTokenizer, WhitespaceTokenizer, whitespace_pieces

from .conftest import SAMPLES, corpora_dir, train_small

CONLL_2003 = """\
-DOCSTART- -X- -X- O

SOCCER NN I-NP O
- : O O
JAPAN NNP I-NP I-LOC
GET VB I-VP O
LUCKY NNP I-NP O
WIN NNP I-NP O
. . O O

Nadim NNP I-NP I-PER
Ladki NNP I-NP I-PER

AL-AIN NNP I-NP I-LOC
, , O O
United NNP I-NP I-LOC
Arab NNP I-NP I-LOC
Emirates NNPS I-NP I-LOC
1996-12-06 CD I-NP O
"""


def run(args: list[object], input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def ok(args: list[object], input: str | bytes | None = None) -> Result:
    res = run(args, input)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "Traceback" not in res.output
    return res


def records(res: Result) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines()]


def blocks(res: Result) -> list[list[str]]:
    """The tokens of each CoNLL block of the output."""
    return [[row.split("\t")[0] for row in block.splitlines()] for block in res.stdout.rstrip("\n").split("\n\n")]


@pytest.fixture(scope="module")
def spacy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny NER tagger whose tokenizer is spaCy's (one epoch: only its tokenization matters here)."""
    out = tmp_path_factory.mktemp("models") / "ner_spacy"
    train_small("ner", out, {"model": {"tokenizer": {"type": "spacy.v1"}}, "training": {"max_epochs": 1}})
    return out


# -- a line of any length (spaCy refuses texts over its max_length, 1,000,000 characters) ------------------
def test_whitespace_pieces_cover_the_text_and_cut_only_at_whitespace() -> None:
    text = "ab cd\tef  gh\n" * 7
    for limit in (1, 2, 3, 4, 5, 9, 40, len(text), len(text) + 1):
        pieces = whitespace_pieces(text, limit)
        assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # contiguous, in order
        assert all(0 < stop - start <= limit for start, stop in pieces)
        if limit >= 3:  # every 3 characters hold a whitespace: no cut inside a word
            assert all(text[stop].isspace() for _, stop in pieces[:-1])
    assert whitespace_pieces("", 5) == [(0, 0)]
    assert whitespace_pieces("abcdefgh", 3) == [(0, 3), (3, 6), (6, 8)]  # no whitespace: cut at the limit
    assert whitespace_pieces("abc\u3000defg", 4) == [(0, 3), (3, 7), (7, 8)]  # any Unicode whitespace


def test_spacy_tokenizer_in_pieces_gives_the_tokens_and_offsets_of_the_whole_text() -> None:
    whole = SpacyTokenizer()
    rng = random.Random(0)
    words = ["Hello", "U.S.", "don't", "(e-mail)", "3.5", "$10", "http://x.org/a?b=c", "Mr.", "it's", "...",
             "co-op", ":-)", "naïve", "\xa0", "Oslo,"]
    in_pieces = []
    for limit in (24, 33, 100):  # every 22 characters hold a whitespace, so each cut falls in one
        tok = SpacyTokenizer()
        tok.max_chars = limit
        in_pieces.append(tok)
    for _ in range(60):
        gaps = [" ", "  ", "\t", "\n", " \n "]
        text = "".join(rng.choice(words) + rng.choice(gaps) for _ in range(rng.randint(1, 40)))
        expected = whole(text)
        for tok in in_pieces:
            assert tok(text) == expected, (text, tok.max_chars)
            assert tok.pipe([text, "a b"]) == [expected, whole("a b")]
    for tok in whole("Lucy lives in Oslo ."):
        assert tok.text == "Lucy lives in Oslo ."[tok.start:tok.end]


def test_spacy_tokenizer_cuts_a_text_without_whitespace_at_the_limit() -> None:
    tok = SpacyTokenizer()
    tok.max_chars = 4
    assert [(t.text, t.start, t.end) for t in tok("abcdefghij")] == [("abcd", 0, 4), ("efgh", 4, 8), ("ij", 8, 10)]


def test_predict_takes_a_line_over_a_million_characters_with_the_spacy_tokenizer(spacy_model: Path,
                                                                                tmp_path: Path) -> None:
    """spaCy's own limit (``nlp.max_length``, E088) is 1,000,000 characters; the line holds few words so
    that tagging it takes no time, and the pieces' cuts fall in its runs of spaces."""
    gap = " " * 250_000
    line = "Lucy lives in Oslo ." + gap + "Acme said ." + gap + "Anna" + gap + "(U.S.)" + gap + "end"
    assert len(line) > 1_000_000
    f = tmp_path / "long.txt"
    f.write_text("Anna said .\n" + line + "\nLucy said .\n", encoding="utf-8")
    res = ok(["predict", spacy_model, f])
    first, long, last = records(res)
    assert first["tokens"] == ["Anna", "said", "."] and last["tokens"] == ["Lucy", "said", "."]
    assert long["tokens"] == ["Lucy", "lives", "in", "Oslo", ".", "Acme", "said", ".", "Anna", "(", "U.S.", ")", "end"]
    assert [line[a:b] for a, b in long["offsets"]] == long["tokens"]
    assert long["offsets"][5] == [20 + 250_000, 24 + 250_000] and long["offsets"][-1][1] == len(line)
    assert res.stderr.splitlines() == [f"reading {f} as text (one text per line); pass --input-format conll "
                                       f"to read it as CoNLL columns"]


# -- a line the tokenizer cannot take --------------------------------------------------------------------
def test_a_line_the_tokenizer_cannot_take_is_skipped_with_a_one_line_warning(ner_model: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    plain = WhitespaceTokenizer.__call__

    def fragile(self: WhitespaceTokenizer, text: str) -> list:
        if "BOOM" in text:
            raise RuntimeError("cannot take\nthis")
        return plain(self, text)

    monkeypatch.setattr(WhitespaceTokenizer, "__call__", fragile)
    text = "Lucy lives in Oslo .\nBOOM goes it\n\nAcme said .\nBOOM\n"
    res = ok(["predict", ner_model, "-"], input=text)
    rows = records(res)
    assert [r["tokens"] for r in rows] == [["Lucy", "lives", "in", "Oslo", "."], [], [], ["Acme", "said", "."], []]
    assert rows[1] == {"tokens": [], "tags": [], "scores": [], "entities": [], "offsets": []}
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert warnings == [f"warning: <stdin>:{n}: cannot tokenize this line (RuntimeError: cannot take this); skipped"
                        for n in (2, 5)]
    assert len(res.stderr.splitlines()) == 3  # and the line saying how the input was read
    # from a file, in CoNLL out, and past the first chunk of lines: still one record per line
    f = tmp_path / "in.txt"
    lines = ["Lucy said ."] * 5000
    lines[4321] = "BOOM"
    f.write_text("\n".join(lines) + "\n")
    res = ok(["predict", ner_model, f, "--input-format", "text", "--output-format", "conll"])
    out = res.stdout.split("\n\n")
    assert len(out) == 5000 + 1 and out[4321] == "" and out[4322].startswith("Lucy\t")
    assert res.stderr == f"warning: {f}:4322: cannot tokenize this line (RuntimeError: cannot take this); skipped\n"


def test_a_tokenizer_that_cannot_be_set_up_is_an_error_not_a_warning_per_line() -> None:
    class NoLanguage(WhitespaceTokenizer):
        def __call__(self, text: str) -> list:
            raise ConfigError("spacy.v1 tokenizer: spaCy has no language 'xx'")

    said: list[str] = []
    guard = LineTokenizer(NoLanguage(), "in.txt", said.append)
    with pytest.raises(ConfigError):
        guard("a b")
    assert said == []


# -- --input-format auto: the content decides when the name does not ---------------------------------------
@pytest.mark.parametrize("text, expected", [
    (CONLL_2003, "conll"),
    ("-DOCSTART-\n", "conll"),
    ("Lucy\nlives\n\nAnna\nsaid\n", "conll"),  # a token per line: one column
    ("Lucy\tB-PER\nlives\tO\n\nAnna\tB-PER\n", "conll"),
    ("Lucy lives in Oslo .\n\nAcme Corp said .\n", "text"),
    ("Lucy lives\nin Oslo .\n\nAcme said\n", "text"),  # the column count changes
    ("Lucy said\n\nAnna said\n\nBob said\n", "text"),  # no sentence of two lines: text with blank lines
    ("Lucy B-PER\nsaid O\n", "text"),  # a single sentence: nothing shows it is not text
    ("", "text"),
    ("\n\n\n", "text"),
])
def test_sniff_format(text: str, expected: str) -> None:
    lines = text.splitlines()
    fmt, read = sniff_format(iter(lines))
    assert fmt == expected
    assert read == lines[:len(read)]


def test_sniff_format_reads_a_bounded_number_of_lines() -> None:
    sentence = ["w X O"] * 5 + [""]
    lines = iter(sentence * 1000)
    fmt, read = sniff_format(lines)
    assert fmt == "conll" and len(read) == 12  # stops at the blank line after two sentences
    fmt, read = sniff_format(iter(["w X O"] * 1000))
    assert fmt == "text" and len(read) == SNIFF_LINES  # one long sentence, no break seen
    fmt, read = sniff_format(iter(["x" * 60_000] * 10))
    assert fmt == "text" and len(read) == 2  # huge lines: bounded in characters too


def test_read_conll_blocks_skips_docstart_and_takes_the_first_column() -> None:
    assert list(read_conll_blocks(CONLL_2003.splitlines())) == [
        ["SOCCER", "-", "JAPAN", "GET", "LUCKY", "WIN", "."], ["Nadim", "Ladki"],
        ["AL-AIN", ",", "United", "Arab", "Emirates", "1996-12-06"]]
    assert list(read_conll_blocks(["a X", "-DOCSTART- X", "b X", "", "", "c X"])) == [["a"], ["b"], ["c"]]


def test_auto_reads_a_column_file_without_a_conll_suffix_as_columns(ner_model: Path, tmp_path: Path) -> None:
    f = tmp_path / "eng.testb"
    f.write_text(CONLL_2003)
    res = ok(["predict", ner_model, f])
    assert res.stderr.splitlines() == [f"reading {f} as CoNLL columns (first column: tokens); "
                                       "pass --input-format text to read it as text"]
    assert blocks(res) == list(read_conll_blocks(CONLL_2003.splitlines()))
    assert "-DOCSTART-" not in res.stdout and "I-NP" not in res.stdout
    assert res.stdout == ok(["predict", ner_model, f, "--input-format", "conll"]).stdout
    # standard input too; and --input-format text reads it as text, without a word about it
    res = ok(["predict", ner_model, "-"], input=CONLL_2003)
    assert res.stderr.startswith("reading <stdin> as CoNLL columns") and blocks(res)[1] == ["Nadim", "Ladki"]
    res = ok(["predict", ner_model, f, "--input-format", "text"])
    assert res.stderr == "" and records(res)[0]["tokens"] == ["-DOCSTART-", "-X-", "-X-", "O"]
    assert len(records(res)) == len(CONLL_2003.splitlines())


def test_auto_reads_conll_2003s_own_test_file_as_columns(ner_model: Path, tmp_path: Path) -> None:
    root = corpora_dir()
    src = root / "conll2003" / "eng.testb" if root else None
    if src is None or not src.is_file():
        pytest.skip("SEQTAG_CORPORA/conll2003/eng.testb is not here")
    f = tmp_path / "eng.testb"  # its first 500 lines, under its own name (the whole file takes seconds)
    with src.open(encoding="utf-8") as lines:
        f.write_text("".join(line for _, line in zip(range(500), lines)), encoding="utf-8")
    res = ok(["predict", ner_model, f])
    assert res.stderr.startswith(f"reading {f} as CoNLL columns (first column: tokens)")
    assert blocks(res)[0] == ["SOCCER", "-", "JAPAN", "GET", "LUCKY", "WIN", ",", "CHINA", "IN", "SURPRISE",
                              "DEFEAT", "."]
    assert sum(map(len, blocks(res))) == sum(1 for ln in f.read_text().splitlines()
                                             if ln.strip() and not ln.startswith("-DOCSTART-"))


def test_auto_reads_text_as_text_and_loses_no_line_read_to_decide(ner_model: Path, tmp_path: Path) -> None:
    text = "Lucy lives in Oslo .\n\n" + "Acme said .\n" * (2 * SNIFF_LINES) + "Anna\n"
    res = ok(["predict", ner_model, "-"], input=text)
    assert res.stderr == ("reading <stdin> as text (one text per line); pass --input-format conll to read it as "
                          "CoNLL columns\n")
    assert [r["tokens"] for r in records(res)] == [line.split() for line in text.splitlines()]
    # a column file longer than what is read to decide: every token is there, in order
    f = tmp_path / "tokens.txt"
    f.write_text("".join("\n".join(f"w{k}{i} X O" for i in range(7)) + "\n\n" for k in range(100)))
    res = ok(["predict", ner_model, f])
    assert blocks(res) == [[f"w{k}{i}" for i in range(7)] for k in range(100)]


def test_a_conll_suffix_or_an_explicit_format_decides_without_a_message(ner_model: Path, tmp_path: Path) -> None:
    f = tmp_path / "in.conll"
    f.write_text("Lucy\nlives\nin\nOslo\n.\n")  # a single sentence, which alone would read as text
    res = ok(["predict", ner_model, f])
    assert res.stderr == "" and blocks(res) == [["Lucy", "lives", "in", "Oslo", "."]]
    res = ok(["predict", ner_model, "-", "--input-format", "conll"], input="Lucy\nsaid\n")
    assert res.stderr == "" and blocks(res) == [["Lucy", "said"]]


# -- a terminal ------------------------------------------------------------------------------------------
def _read_line(fd: int, deadline: float) -> bytes:
    """One line from ``fd``, or whatever came before ``deadline``."""
    out = b""
    while not out.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        out += chunk
    return out


def test_a_terminal_is_answered_line_by_line(ner_model: Path) -> None:
    """Each line typed is tagged and printed at once; the answer comes before the input ends."""
    master, slave = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seqtag.cli", "predict", str(ner_model)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=Path(__file__).parent.parent)
    os.close(slave)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        deadline = time.monotonic() + 60
        os.write(master, b"Lucy lives in Oslo .\n")
        first = _read_line(proc.stdout.fileno(), deadline)
        assert first.endswith(b"\n"), (first, proc.poll())
        assert json.loads(first)["tokens"] == ["Lucy", "lives", "in", "Oslo", "."]
        os.write(master, b"Acme said .\n")
        second = _read_line(proc.stdout.fileno(), deadline)
        assert json.loads(second)["tokens"] == ["Acme", "said", "."]
        os.write(master, b"\x04")  # end of input (Ctrl-D)
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == b"" and proc.stderr.read() == b""  # no sniffing message for a terminal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        proc.stdout.close()
        proc.stderr.close()


def test_the_sample_corpus_still_reads_the_same(ner_model: Path) -> None:
    """The sample corpus files end in .conll: the name decides, as before."""
    f = SAMPLES / "sample_ner" / "dev.conll"
    res = ok(["predict", ner_model, f])
    assert res.stderr == "" and blocks(res) == list(read_conll_blocks(f.read_text().splitlines()))
