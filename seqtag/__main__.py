"""``python -m seqtag``: the ``seqtag`` command, as ``torchrun -m seqtag train ...`` starts it."""

from .cli import main

if __name__ == "__main__":
    main()
