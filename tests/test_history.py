"""history.jsonl: one line per finished epoch beside the model, kept whole across a resume."""

from __future__ import annotations

from pathlib import Path

from seqtag.history import read_history

from .conftest import train_small


def test_history_has_a_line_per_epoch(tmp_path: Path) -> None:
    _, summary = train_small("ner", tmp_path / "m", {"training": {"max_epochs": 3, "patience": 3}})
    lines = read_history(tmp_path / "m")
    assert [e["epoch"] for e in lines] == [1, 2, 3]
    assert [e["dev"] for e in lines] == [e["dev"] for e in summary["history"]]
    for e in lines:
        assert set(e) >= {"loss", "dev", "lr", "tokens_per_second", "seconds"}
        assert e["tokens_per_second"] > 0 and e["loss"] > 0
    assert lines[0]["seconds"] <= lines[-1]["seconds"]
