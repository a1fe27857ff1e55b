"""Built-in tagging heads: softmax and linear-chain CRF."""

from .base import Head
from .crf import CRFHead
from .softmax import SoftmaxHead

__all__ = ["Head", "SoftmaxHead", "CRFHead"]
