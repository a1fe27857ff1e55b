"""Packaging a saved seqtag tagger as a spaCy pipeline (``seqtag spacy-package``).

The pipeline folder holds a blank spaCy tokenizer and the ``seqtag`` component with the tagger
inside it, so ``spacy.load`` opens the folder on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union, cast

from .errors import ConfigError, SeqtagError

__all__ = ["package_pipeline"]


def package_pipeline(model: Union[str, Path], output: Union[str, Path], lang: str = "en",
                     name: Optional[str] = None, spans_key: Optional[str] = None, force: bool = False,
                     verify: bool = True) -> Path:
    """Write a spaCy pipeline folder (``spacy.load`` opens it) holding a blank ``lang`` tokenizer and the tagger.

    The tagger goes inside the folder (``OUTPUT/seqtag/``, seqtag's format), so the folder stands alone.
    """
    import spacy

    from .about import __version__
    from .modeldir import is_model_dir
    from .spacy_component import SeqtagComponent
    from .tagger import Tagger

    out = Path(output)
    if out.exists() and (is_model_dir(out) or out.resolve() == Path(model).resolve()):
        raise ConfigError(f"{out}: a seqtag model folder; the pipeline would overwrite its files "
                          f"(--force never does), choose another OUTPUT_DIR")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(f"{out}: exists and is not an empty folder; choose another OUTPUT_DIR or pass --force")
    tagger = Tagger.load(model, verify=verify)
    try:
        nlp = spacy.blank(lang)
    except (ImportError, KeyError, ValueError) as exc:
        raise ConfigError(f"--lang {lang!r}: spaCy has no such language ({' '.join(str(exc).split())[:120]})") from None
    comp = cast(SeqtagComponent, nlp.add_pipe("seqtag", config={"spans_key": spans_key}))
    comp._set_tagger(tagger)
    pipe_name = name or f"seqtag_{tagger.task}"
    if not pipe_name.replace("_", "").isalnum():
        raise ConfigError(f"--name {pipe_name!r}: use letters, digits and underscores only")
    nlp.meta.update({"name": pipe_name, "version": "0.0.0",
                     "description": f"seqtag {tagger.task.upper()} tagger from {Path(model).name}",
                     "requirements": [f"seqtag>={__version__}"]})
    try:
        nlp.to_disk(out)
    except OSError as exc:
        raise SeqtagError(f"{out}: cannot write the pipeline ({exc.strerror or exc})") from None
    return out
