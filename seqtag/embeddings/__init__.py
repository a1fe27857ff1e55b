"""Built-in embeddings: word, character CNN, character BiLSTM, pretrained vectors, concatenation."""

from .base import Embedding
from .chars import CharCNNEmbedding, CharLSTMEmbedding
from .concat import ConcatEmbedding
from .pretrained import PretrainedEmbedding
from .word import WordEmbedding

__all__ = ["Embedding", "WordEmbedding", "CharCNNEmbedding", "CharLSTMEmbedding", "PretrainedEmbedding",
           "ConcatEmbedding"]
