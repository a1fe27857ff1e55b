"""Writes the small sample corpora in this folder (synthetic sentences, free to redistribute).

    python corpora/make_samples.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).parent
PEOPLE = ["John Smith", "Maria Garcia", "Wei Chen", "Anna", "Peter Blackburn", "Olga Ivanova", "Ahmed Khan", "Lucy"]
PLACES = ["Paris", "New York", "Berlin", "Tokyo", "Cairo", "Lima", "Oslo", "South Africa"]
ORGS = ["Acme Corp", "the United Nations", "Reuters", "Siemens", "the European Union", "Toyota"]
MISC = ["German", "French", "Olympic", "Japanese", "Christmas"]
TEMPLATES = [
    ("{PER} lives in {LOC} .", None),
    ("{PER} works for {ORG} in {LOC} .", None),
    ("{ORG} opened an office in {LOC} on Monday .", None),
    ("The {MISC} team met {PER} .", None),
    ("{PER} said {ORG} would grow .", None),
    ("Yesterday {PER} flew to {LOC} with {PER2} .", None),
]
POS = {"lives": "VERB", "in": "ADP", ".": "PUNCT", "works": "VERB", "for": "ADP", "opened": "VERB", "an": "DET",
       "office": "NOUN", "on": "ADP", "Monday": "PROPN", "The": "DET", "team": "NOUN", "met": "VERB", "said": "VERB",
       "would": "AUX", "grow": "VERB", "Yesterday": "NOUN", "flew": "VERB", "to": "ADP", "with": "ADP", "the": "DET"}


def sentence(rng: random.Random) -> list[tuple[str, str, str]]:
    template, _ = rng.choice(TEMPLATES)
    out: list[tuple[str, str, str]] = []
    for piece in template.split():
        if piece.startswith("{"):
            key = piece.strip("{}")
            etype = key.rstrip("2")
            pool = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS, "MISC": MISC}[etype]
            words = rng.choice(pool).split()
            for j, w in enumerate(words):
                tag = ("B-" if j == 0 else "I-") + etype
                pos = "DET" if w == "the" else ("ADJ" if etype == "MISC" else "PROPN")
                out.append((w, pos, tag))
        else:
            out.append((piece, POS[piece], "O"))
    return out


def main() -> None:
    for split, n, seed in (("train", 120, 1), ("dev", 30, 2), ("test", 30, 3)):
        rng = random.Random(seed)
        sents = [sentence(rng) for _ in range(n)]
        ner = "\n\n".join("\n".join(f"{w} {p} {t}" for w, p, t in s) for s in sents) + "\n"
        (HERE / "sample_ner").mkdir(exist_ok=True)
        (HERE / "sample_ner" / f"{split}.conll").write_text(ner, encoding="utf-8")
        conllu = []
        for k, s in enumerate(sents, 1):
            lines = [f"# sent_id = sample-{split}-{k}", "# text = " + " ".join(w for w, _, _ in s)]
            lines += [f"{i}\t{w}\t_\t{p}\t_\t_\t_\t_\t_\t_" for i, (w, p, _) in enumerate(s, 1)]
            conllu.append("\n".join(lines))
        (HERE / "sample_pos").mkdir(exist_ok=True)
        (HERE / "sample_pos" / f"{split}.conllu").write_text("\n\n".join(conllu) + "\n\n", encoding="utf-8")


if __name__ == "__main__":
    main()
