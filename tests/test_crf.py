"""The CRF against brute-force enumeration over every tag sequence (pytorch-crf's test recipe)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seqtag.heads.crf import CRFHead
from seqtag.labels import is_valid
from seqtag.masks import mask_from_lengths

LABELS = ["B-PER", "I-PER", "B-LOC", "I-LOC", "O"]


def make(seed: int, constrained: bool = False, labels: list[str] = LABELS, scheme: str = "IOB2") -> CRFHead:
    torch.manual_seed(seed)
    crf = CRFHead(input_dim=4, labels=labels, scheme=scheme, constrained=constrained)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start_transitions.normal_()
        crf.end_transitions.normal_()
    return crf


def brute(crf: CRFHead, em: torch.Tensor, n: int) -> tuple[float, list[int], dict[tuple[int, ...], float]]:
    start, trans, end = (p.detach() for p in crf._params())
    k = em.size(-1)
    scores = {}
    for path in itertools.product(range(k), repeat=n):
        s = start[path[0]] + em[0, path[0]]
        for t in range(1, n):
            s = s + trans[path[t - 1], path[t]] + em[t, path[t]]
        scores[path] = float(s + end[path[-1]])
    log_z = math.log(sum(math.exp(v) for v in scores.values()))
    best = max(scores, key=scores.get)
    return log_z, list(best), scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("constrained", [False, True])
def test_likelihood_and_viterbi_equal_brute_force(seed: int, constrained: bool) -> None:
    crf = make(seed, constrained)
    lengths = [4, 2, 3]
    em = torch.randn(3, 4, len(LABELS), generator=torch.Generator().manual_seed(seed))
    mask = mask_from_lengths(torch.tensor(lengths), 4)
    tags = torch.randint(0, len(LABELS), (3, 4), generator=torch.Generator().manual_seed(seed + 100))
    ll = crf.log_likelihood(em, tags, mask)
    path, _ = crf.viterbi(em, mask)
    marg = crf.marginals(em, mask)
    for i, n in enumerate(lengths):
        log_z, best, scores = brute(crf, em[i], n)
        gold = tuple(tags[i, :n].tolist())
        assert ll[i].item() == pytest.approx(scores[gold] - log_z, rel=1e-6, abs=1e-3)
        assert path[i, :n].tolist() == best
        # marginals: P(y_t = j) summed over all paths
        for t in range(n):
            for j in range(len(LABELS)):
                p = sum(math.exp(v - log_z) for pth, v in scores.items() if pth[t] == j)
                assert marg[i, t, j].item() == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("scheme,labels", [
    ("IOB2", LABELS),
    ("BIOES", ["B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "O"]),
])
def test_constrained_decoding_is_always_valid(scheme: str, labels: list[str]) -> None:
    crf = make(0, constrained=True, labels=labels, scheme=scheme)
    with torch.no_grad():  # make invalid transitions tempting
        crf.transitions.fill_(5.0)
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        em = torch.randn(8, 9, len(labels), generator=g) * 4
        lengths = torch.randint(1, 10, (8,), generator=g)
        mask = mask_from_lengths(lengths, 9)
        path, _ = crf.viterbi(em, mask)
        for i in range(8):
            tags = [labels[j] for j in path[i, : int(lengths[i])].tolist()]
            assert is_valid(tags, scheme), tags


def test_unconstrained_decoding_can_be_invalid() -> None:
    """The test above can fail: without constraints the same scores give an orphan I- tag."""
    crf = make(0, constrained=False)
    em = torch.full((1, 2, len(LABELS)), -5.0)
    em[0, :, 1] = 5.0  # I-PER everywhere
    path, _ = crf.viterbi(em, torch.ones(1, 2, dtype=torch.bool))
    assert not is_valid([LABELS[j] for j in path[0].tolist()], "IOB2")


def test_loss_trains_towards_gold() -> None:
    crf = make(1)
    x = torch.randn(2, 5, 4)
    tags = torch.tensor([[4, 0, 1, 4, 2], [2, 3, 4, 4, 4]])
    mask = torch.ones(2, 5, dtype=torch.bool)
    opt = torch.optim.Adam(crf.parameters(), lr=0.1)
    first = crf.loss(x, tags, mask).item()
    for _ in range(60):
        opt.zero_grad()
        loss = crf.loss(x, tags, mask)
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.1
    decoded, conf = crf.decode(x, mask)
    assert torch.equal(decoded, tags)
    assert torch.all((conf > 0.5) & (conf <= 1.0))


@pytest.mark.parametrize("lengths", [[3, 3], [1, 4, 2], [1], [5]])
@pytest.mark.parametrize("scripted", [False, True])
def test_any_batch_shape_equals_brute_force_eager_and_scripted(lengths: list[int], scripted: bool) -> None:
    """Batches where every step is real, where one sequence is a single token, and a single sequence, in the
    eager functions and in their TorchScript forms (what the ONNX export traces)."""
    from seqtag.heads import crf_functions as cf

    crf = make(7)
    start, trans, end = (p.detach() for p in crf._params())
    width = max(lengths)
    em = torch.randn(len(lengths), width, len(LABELS), generator=torch.Generator().manual_seed(len(lengths)))
    mask = mask_from_lengths(torch.tensor(lengths), width)
    viterbi = cf.scripted(cf.viterbi) if scripted else cf.viterbi
    marginals = cf.scripted(cf.marginals) if scripted else cf.marginals
    log_partition = cf.scripted(cf.log_partition) if scripted else cf.log_partition
    path, best_score = viterbi(em, mask, start, trans, end)
    marg = marginals(em, mask, start, trans, end)
    log_z = log_partition(em, mask, start, trans, end)
    assert marg.dtype == torch.float32
    torch.testing.assert_close(marg[mask].sum(-1), torch.ones(int(mask.sum())))
    for i, n in enumerate(lengths):
        want_z, best, scores = brute(crf, em[i], n)
        assert path[i, :n].tolist() == best
        assert path[i, n:].tolist() == [best[-1]] * (width - n)  # padding holds the last real tag
        assert best_score[i].item() == pytest.approx(scores[tuple(best)], abs=1e-4)
        assert log_z[i].item() == pytest.approx(want_z, abs=1e-4)
        for t in range(n):
            for j in range(len(LABELS)):
                p = sum(math.exp(v - want_z) for pth, v in scores.items() if pth[t] == j)
                assert marg[i, t, j].item() == pytest.approx(p, abs=2e-6)


@pytest.mark.parametrize("scripted", [False, True])
def test_marginals_of_a_long_sentence_in_float32_equal_float64(scripted: bool) -> None:
    """5,000 tokens of sharp emissions, with a constrained CRF (forbidden transitions), in a batch with a
    short sentence: float32 gives float64's marginals to 1e-5, each position summing to 1."""
    from seqtag.heads import crf_functions as cf

    crf = make(11, constrained=True)
    start, trans, end = (p.detach() for p in crf._params())
    em = torch.randn(2, 5000, len(LABELS), generator=torch.Generator().manual_seed(11)) * 8
    mask = mask_from_lengths(torch.tensor([5000, 7]), 5000)
    marginals = cf.scripted(cf.marginals) if scripted else cf.marginals
    got = marginals(em, mask, start, trans, end)
    want = marginals(em.double(), mask, start.double(), trans.double(), end.double())
    assert got.dtype == torch.float32 and want.dtype == torch.float64
    assert torch.isfinite(got[mask]).all()
    torch.testing.assert_close(got[mask].double(), want[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[mask].sum(-1), torch.ones(int(mask.sum())))


def test_decode_with_and_without_confidence() -> None:
    """Tags are the same either way; without confidence the scores are the mask; padding is 0 in both."""
    crf = make(3)
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(3))
    mask = mask_from_lengths(torch.tensor([6, 2, 4]))
    tags, conf = crf.decode(x, mask)
    fast_tags, ones = crf.decode(x, mask, with_confidence=False)
    assert torch.equal(tags, fast_tags) and torch.equal(ones, mask.float())
    assert torch.all(tags[~mask] == 0) and torch.all(conf[~mask] == 0)
    marg = crf.marginals(crf.emissions(x), mask)
    torch.testing.assert_close(conf[mask], marg.gather(2, tags.unsqueeze(2)).squeeze(2)[mask])


@pytest.mark.parametrize("constrained", [False, True])
def test_the_log_likelihoods_gradient_equals_brute_force(constrained: bool) -> None:
    """The gradient of log Z (what training follows) w.r.t. the emissions and the transitions equals the one
    of log Z summed over every path, finite where the scheme forbids transitions."""
    crf = make(5, constrained)
    lengths = [4, 2, 3]
    em = torch.randn(3, 4, len(LABELS), generator=torch.Generator().manual_seed(5), requires_grad=True)
    mask = mask_from_lengths(torch.tensor(lengths), 4)
    crf.log_partition(em, mask).sum().backward()
    got_em, got_trans = em.grad.clone(), crf.transitions.grad.clone()
    assert torch.isfinite(got_em).all() and torch.isfinite(got_trans).all()
    em.grad, crf.transitions.grad = None, None
    start, trans, end = crf._params()
    total = torch.zeros(())
    for i, n in enumerate(lengths):
        scores = []
        for path in itertools.product(range(len(LABELS)), repeat=n):
            s = start[path[0]] + em[i, 0, path[0]] + end[path[-1]]
            for t in range(1, n):
                s = s + trans[path[t - 1], path[t]] + em[i, t, path[t]]
            scores.append(s)
        total = total + torch.logsumexp(torch.stack(scores), dim=0)
    total.backward()
    torch.testing.assert_close(got_em, em.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_trans, crf.transitions.grad, atol=1e-5, rtol=1e-4)
