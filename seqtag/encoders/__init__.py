"""Built-in encoders: RNN, LSTM, GRU (stacked, bidirectional), a stack of encoders, identity."""

from .base import Encoder, lengths_of
from .rnn import GRUEncoder, LSTMEncoder, RecurrentEncoder, RNNEncoder
from .stack import IdentityEncoder, StackEncoder

__all__ = ["Encoder", "lengths_of", "RecurrentEncoder", "RNNEncoder", "LSTMEncoder", "GRUEncoder", "StackEncoder",
           "IdentityEncoder"]
