"""The built-in recurrent encoders agree with torch.nn.RNN/LSTM/GRU holding the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqtag import registry
from seqtag.config import build_part
from seqtag.embeddings import CharLSTMEmbedding
from seqtag.encoders.padded_rnn import padded_rnn
from seqtag.masks import mask_from_lengths

CASES = [(name, layers, bi) for name in ("rnn.v1", "lstm.v1", "gru.v1") for layers in (1, 2) for bi in (False, True)]
TORCH = {"rnn.v1": nn.RNN, "lstm.v1": nn.LSTM, "gru.v1": nn.GRU}


def padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = [7, 3, 5, 1]
    x = torch.randn(len(lengths), max(lengths), 6, generator=g)  # shape: (batch, seq, 6)
    mask = mask_from_lengths(torch.tensor(lengths))  # shape: (batch, seq)
    return x, mask, lengths


@pytest.mark.parametrize("name,layers,bi", CASES)
def test_encoder_matches_torch_reference(name: str, layers: int, bi: bool) -> None:
    torch.manual_seed(1)
    enc = build_part("encoder", {"type": name, "hidden_size": 5, "num_layers": layers, "bidirectional": bi},
                     input_dim=6).eval()
    ref = TORCH[name](6, 5, num_layers=layers, bidirectional=bi, batch_first=True).eval()
    ref.load_state_dict(enc.rnn.state_dict(), strict=True)
    x, mask, lengths = padded_batch()
    out = enc(x, mask)
    assert out.shape == (4, 7, 5 * (2 if bi else 1))
    for i, n in enumerate(lengths):
        # the reference sees each sequence alone, with no padding at all
        expected, _ = ref(x[i: i + 1, :n])
        torch.testing.assert_close(out[i: i + 1, :n], expected, rtol=1e-5, atol=1e-6)
        assert torch.all(out[i, n:] == 0)


@pytest.mark.parametrize("name", ["rnn.v1", "lstm.v1", "gru.v1", "stack.v1"])
def test_padding_changes_no_real_position(name: str) -> None:
    torch.manual_seed(0)
    cfg = {"type": name}
    if name == "stack.v1":
        cfg = {"type": name, "layers": [{"type": "lstm.v1", "hidden_size": 4}, {"type": "gru.v1", "hidden_size": 3}],
               "residual": True}
    enc = build_part("encoder", cfg, input_dim=6).eval()
    x, mask, lengths = padded_batch()
    out = enc(x, mask)
    noisy = x.clone()
    noisy[~mask] = 100.0  # garbage in the padding
    out2 = enc(noisy, mask)
    assert torch.equal(out[mask], out2[mask])
    longer = torch.cat([x, torch.randn(4, 5, 6)], dim=1)  # more padding
    out3 = enc(longer, torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], dim=1))
    torch.testing.assert_close(out3[:, :7][mask], out[mask])


def test_rnn_relu_is_elman_recurrence() -> None:
    """``s_t = relu(U x_t + W s_{t-1} + b)``, computed by hand, equals the encoder's output."""
    torch.manual_seed(3)
    enc = build_part("encoder", {"type": "rnn.v1", "hidden_size": 4, "bidirectional": False,
                                 "nonlinearity": "relu"}, input_dim=3).eval()
    x = torch.randn(1, 5, 3)
    U, W = enc.rnn.weight_ih_l0, enc.rnn.weight_hh_l0
    b = enc.rnn.bias_ih_l0 + enc.rnn.bias_hh_l0
    s = torch.zeros(4)
    states = []
    for t in range(5):
        s = torch.relu(U @ x[0, t] + W @ s + b)
        states.append(s)
    torch.testing.assert_close(enc(x)[0], torch.stack(states), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm.v1", "rnn.v1"])
def test_seed_example_through_registry(name: str) -> None:
    """The classic example: hidden 20 over a (3, 8, 10) batch, a linear layer on the last step -> (3, 5)."""
    encoder_cls = registry.encoders.get(name)
    encoder = encoder_cls(input_dim=10, hidden_size=20, num_layers=1, bidirectional=False)
    linear = nn.Linear(encoder.output_dim, 5)
    x = torch.randn(3, 8, 10)
    out = linear(encoder(x)[:, -1, :])
    assert out.shape == (3, 5)


def test_stack_wires_sizes_and_identity() -> None:
    enc = build_part("encoder", {"type": "stack.v1", "layers": [
        {"type": "lstm.v1", "hidden_size": 8}, {"type": "gru.v1", "hidden_size": 5, "bidirectional": False}]},
        input_dim=6)
    assert enc.layers[1].input_dim == 16 and enc.output_dim == 5
    ident = build_part("encoder", {"type": "identity.v1"}, input_dim=6)
    x = torch.randn(2, 3, 6)
    assert torch.equal(ident(x), x) and ident.output_dim == 6


def test_wrong_input_size_is_a_clear_error() -> None:
    enc = build_part("encoder", {"type": "lstm.v1"}, input_dim=6)
    with pytest.raises(ValueError, match=r"expects \(batch, seq, 6\), got \(2, 3, 4\)"):
        enc(torch.randn(2, 3, 4))


@pytest.mark.parametrize("name", ["rnn.v1", "lstm.v1", "gru.v1"])
def test_padded_path_equals_packed_path_with_gradients(name: str) -> None:
    """The fused padded recurrence gives the packed sequences' outputs and gradients."""
    torch.manual_seed(2)
    enc = build_part("encoder", {"type": name, "hidden_size": 5, "num_layers": 2}, input_dim=6).train()
    x, mask, _ = padded_batch()
    results = []
    for fused in (True, False):
        enc.fused_padding = fused
        xx = x.clone().requires_grad_(True)
        out = enc(xx, mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), xx.grad, enc.rnn.weight_hh_l0.grad.clone()))
        enc.zero_grad()
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["rnn.v1", "lstm.v1", "gru.v1"])
def test_the_recurrence_keeps_its_backward_state_whenever_autograd_is_on(name: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused call's ``train`` flag follows autograd (cuDNN refuses the backward of a recurrence run
    without it), also for a module in eval mode; under ``no_grad`` and inference mode it is off."""
    fn = {"rnn.v1": "rnn_tanh", "lstm.v1": "lstm", "gru.v1": "gru"}[name]
    seen: list[bool] = []
    real = getattr(torch, fn)

    def spy(*args: object) -> object:
        seen.append(bool(args[6]))  # input, hidden, params, bias, layers, dropout, train, ...
        return real(*args)

    monkeypatch.setattr(torch, fn, spy)
    enc = build_part("encoder", {"type": name, "hidden_size": 5, "num_layers": 2, "bidirectional": True},
                     input_dim=6)
    x, mask, _ = padded_batch()
    enc.train()(x, mask).sum().backward()
    assert seen == [True] * 4  # two layers, two directions
    seen.clear()
    enc.eval()(x.requires_grad_(True), mask).sum().backward()
    assert seen == [True] * 4
    seen.clear()
    with torch.no_grad():
        enc(x, mask)
    with torch.inference_mode():
        enc(x, mask)
    assert seen == [False] * 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["rnn.v1", "lstm.v1", "gru.v1"])
def test_gradients_on_cuda_equal_the_cpus(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward and backward of the padded recurrence on a GPU (cuDNN) give the CPU's numbers (in full float32:
    cuDNN's default TF32 keeps 10 bits of mantissa)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(3)
    enc = build_part("encoder", {"type": name, "hidden_size": 5, "num_layers": 2, "bidirectional": True},
                     input_dim=6).train()
    x, mask, _ = padded_batch()
    results = []
    for device in ("cpu", "cuda"):
        enc.to(device).zero_grad()
        xx = x.to(device).detach().requires_grad_(True)  # a leaf on each device
        out = enc(xx, mask.to(device))
        (out * torch.linspace(-1, 1, out.numel(), device=device).view_as(out)).sum().backward()
        results.append([t.detach().cpu() for t in (out, xx.grad, enc.rnn.weight_hh_l0.grad)])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rnn", [
    nn.RNN(6, 5, num_layers=2, bidirectional=True, batch_first=True, bias=False, nonlinearity="relu"),
    nn.LSTM(6, 5, bidirectional=True, batch_first=True, bias=False),
    nn.GRU(6, 5, num_layers=2, batch_first=True),
], ids=["rnn-relu-nobias", "lstm-nobias", "gru-2-layers"])
def test_padded_rnn_matches_torch_with_and_without_bias(rnn: nn.RNNBase) -> None:
    """The one padded recurrence (encoders, character BiLSTM, export) over any torch RNN's settings."""
    rnn.eval()
    x, mask, lengths = padded_batch(4)
    out = padded_rnn(rnn, x, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        expected, _ = rnn(x[i: i + 1, :n])
        torch.testing.assert_close(out[i: i + 1, :n], expected, rtol=1e-5, atol=1e-6)
    assert torch.all(out[~mask] == 0)


def test_char_lstm_word_vectors_are_the_packed_lstm_final_states() -> None:
    """Each word's vector is the forward state after its last character and the backward state after its first."""
    torch.manual_seed(5)
    emb = CharLSTMEmbedding(char_dim=4, hidden_size=3)
    emb.initialize([["abc", "de", "fghijk", "l"]])
    feats = emb.featurize([["abc", "de", "fghijk", "l"]])
    chars, lengths = feats["chars"], feats["lengths"]  # shape: (4, 6), (4,)
    got = emb.encode_words(chars, lengths)  # shape: (4, 6)
    packed = nn.utils.rnn.pack_padded_sequence(emb.char_embed(chars), lengths, batch_first=True, enforce_sorted=False)
    _, (h, _) = emb.lstm(packed)  # shape: (2, 4, 3)
    torch.testing.assert_close(got, torch.cat([h[0], h[1]], dim=-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [0.5, 0.3, 0.05])
def test_keep_scales_drop_with_probability_p_and_scale_the_rest(p: float) -> None:
    from seqtag.model import keep_scales

    torch.manual_seed(0)
    keep = keep_scales((3, 1001, 333), p, torch.device("cpu"), torch.float32)  # 999,999 elements: not a multiple of 4
    assert keep.shape == (3, 1001, 333)
    values = keep.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p))
    assert abs(float((keep == 0).float().mean()) - p) < 0.002  # binomial sd at most 0.0005
    other = keep_scales((3, 1001, 333), p, torch.device("cpu"), torch.float32)
    assert not torch.equal(keep, other)  # a fresh mask each call
    lanes = (keep == 0).flatten()[:999_996].view(-1, 4).float().T  # the four 16-bit lanes of each 64-bit draw
    assert float((lanes.mean(dim=1) - p).abs().max()) < 0.004
    between = torch.corrcoef(lanes) - torch.eye(4)
    assert float(between.abs().max()) < 0.01  # independent lanes (the sd of a correlation here is about 0.002)


def test_locked_dropout_drops_the_same_dimensions_at_every_position() -> None:
    from seqtag.model import Dropout

    torch.manual_seed(0)
    x = torch.ones(4, 9, 32)
    locked = Dropout(0.5, locked=True).train()
    y = locked(x)
    kept = y != 0  # shape: (4, 9, 32)
    assert bool((kept == kept[:, :1]).all())  # one mask per sentence, shared by its positions
    assert not bool((kept[0] == kept[1]).all())  # each sentence draws its own
    assert set(y.unique().tolist()) == {0.0, 2.0}  # inverted: kept values are scaled by 1 / (1 - p)
    per_position = Dropout(0.5).train()(x) != 0
    assert not bool((per_position == per_position[:, :1]).all())
    assert torch.equal(locked.eval()(x), x)
