"""The fast paths of predict give the results of the plain ones: batch splitting, the character cache,
the paused garbage collector, the index-based reversal of the backward direction, and in training the
character encoders' groups of words of similar length."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import torch

from seqtag.embeddings.chars import CharCNNEmbedding, CharLSTMEmbedding, length_groups
from seqtag.embeddings.concat import ConcatEmbedding
from seqtag.inference import Predictor, confidence_rows, plan_batches
from seqtag.labels import LabelTable, convert, spans_from_tags
from seqtag.masks import mask_from_lengths
from seqtag.model import make_batch
from seqtag.tagger import Tagger
from seqtag.tokenizers import word_offsets

SAMPLE_TEXT = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "BRUSSELS 1996-08-22",
               "The European Commission said on Thursday it disagreed with German advice to consumers ."]


def test_plan_batches_covers_in_order_and_bounds_size_and_padding() -> None:
    rng = random.Random(0)
    lengths = sorted(rng.choice([1, 2, 3, 5, 8, 13, 40, 90, 124]) for _ in range(700))
    pieces = plan_batches(lengths, 256)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # contiguous, in order
    assert len(pieces) > 3  # the long tail is cut
    for start, stop in pieces:
        lens = lengths[start:stop]
        assert 0 < len(lens) <= 256
        if len(lens) > 16:  # small pieces may pad freely; larger ones keep both bounds
            assert len(lens) * lens[-1] <= 3200
            assert len(lens) * lens[-1] <= 1.1 * sum(lens) or len(lens) * lens[-1] - sum(lens) <= 128
    # a little padding is cheaper than another call: short sentences stay together
    assert plan_batches([1] * 30 + [2] * 200, 256) == [(0, 230)]
    assert plan_batches([1] * 30 + [2] * 200 + [3] * 20, 256) == [(0, 230), (230, 250)]
    assert plan_batches([4] * 600, 256) == [(0, 256), (256, 512), (512, 600)]
    assert plan_batches([], 256) == []
    assert plan_batches([5, 5, 5], 1) == [(0, 1), (1, 2), (2, 3)]


def _random_words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdeABCDE0123.-") for _ in range(rng.randint(1, 35))) for _ in range(n)]


def _char_parts() -> list[CharCNNEmbedding | CharLSTMEmbedding]:
    return [CharCNNEmbedding(char_dim=6, filters=5, kernel_size=5), CharLSTMEmbedding(char_dim=4, hidden_size=3)]


def test_char_cache_equals_plain_forward_across_batches() -> None:
    rng = random.Random(1)
    vocab_words = _random_words(rng, 300)
    for emb in _char_parts():
        emb.initialize([vocab_words])
        for p in emb.parameters():  # the padding row too: results must not depend on batch width
            torch.nn.init.normal_(p, std=0.7)
        emb.eval()
        batches = [[[rng.choice(vocab_words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 9))]
                   for _ in range(12)]
        for batch in batches:
            feats = emb.featurize(batch)
            with torch.no_grad():
                plain = emb(feats)
            with torch.inference_mode():
                cached = emb(feats)
            torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-5)
        assert len(emb._vectors) > 0


def test_concat_cache_equals_plain_forward_and_follows_the_weights() -> None:
    rng = random.Random(3)
    vocab_words = _random_words(rng, 200)
    emb = ConcatEmbedding([{"type": "word.v1", "dim": 6, "casing_dim": 3, "min_freq": 2},
                           {"type": "char_cnn.v1", "char_dim": 4, "filters": 5, "kernel_size": 3}])
    emb.initialize([vocab_words, vocab_words[:100]])  # half the words in the vocabulary, the rest <unk>
    assert emb.context_free
    for p in emb.parameters():
        torch.nn.init.normal_(p, std=0.7)
    emb.eval()
    batches = [[[rng.choice(vocab_words) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 9))]
               for _ in range(10)]
    for batch in batches:
        with torch.no_grad():
            plain = emb(emb.featurize(batch))
        with torch.inference_mode():
            feats = emb.featurize(batch)
            assert set(feats) == {"word_index", "_words"}
            cached = emb(feats)
        real = mask_from_lengths(torch.tensor([len(s) for s in batch]))  # padding: the encoders ignore it
        torch.testing.assert_close(cached[real], plain[real], rtol=1e-6, atol=1e-6)
    assert 0 < len(emb._vectors) <= len(set(vocab_words))
    assert len(emb.parts[1]._vectors) == 0  # the character part keeps no second copy
    with torch.no_grad():  # new weights: the kept vectors are dropped
        emb.parts[0].embed.weight.add_(1.0)
        plain = emb(emb.featurize(batches[0]))
    real = mask_from_lengths(torch.tensor([len(s) for s in batches[0]]))
    with torch.inference_mode():
        torch.testing.assert_close(emb(emb.featurize(batches[0]))[real], plain[real], rtol=1e-6, atol=1e-6)
    # one part that reads its neighbours: no cache, the parts' own features
    emb.parts[0].context_free = False
    with torch.inference_mode():
        assert set(emb.featurize(batches[0])) == {"0", "1"}


def test_caches_follow_a_fused_optimizer() -> None:
    """Fused Adam (the trainer's) updates weights without bumping their versions: the kept vectors must
    still go, or every evaluation during training reads the vectors of the first."""
    for emb in [CharCNNEmbedding(char_dim=4, filters=3),
                ConcatEmbedding([{"type": "word.v1", "dim": 4}, {"type": "char_cnn.v1", "char_dim": 4, "filters": 3}])]:
        emb.initialize([["alpha", "beta", "gamma"]])
        opt = torch.optim.Adam(emb.parameters(), lr=0.5, fused=True)
        batch = [["alpha", "beta"], ["gamma"]]
        real = mask_from_lengths(torch.tensor([2, 1]))
        for _ in range(3):
            emb.train()
            emb(emb.featurize(batch)).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
            emb.eval()
            with torch.no_grad():
                plain = emb(emb.featurize(batch))
            with torch.inference_mode():
                torch.testing.assert_close(emb(emb.featurize(batch))[real], plain[real])


def test_char_cache_is_emptied_when_weights_change() -> None:
    emb = CharCNNEmbedding(char_dim=4, filters=3)
    emb.initialize([["alpha", "beta", "gamma"]])
    emb.eval()
    feats = emb.featurize([["alpha", "beta"]])
    with torch.inference_mode():
        before = emb(feats).clone()
    opt = torch.optim.SGD(emb.parameters(), lr=1.0)
    emb.train()
    loss = emb(emb.featurize([["alpha", "beta"]])).sum()
    loss.backward()
    opt.step()
    emb.eval()
    with torch.no_grad():
        plain = emb(feats)
    with torch.inference_mode():
        after = emb(feats)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, plain)
    # loading other weights empties it too
    other = CharCNNEmbedding(char_dim=4, filters=3)
    other.initialize([["alpha", "beta", "gamma"]])
    emb.load_state_dict(other.state_dict())
    with torch.no_grad():
        plain = emb(feats)
    with torch.inference_mode():
        torch.testing.assert_close(emb(feats), plain)


def test_predict_matches_unsplit_batches_and_restores_gc(ner_model: Path) -> None:
    tagger = Tagger.load(ner_model)
    rng = random.Random(2)
    words = [w for sent in SAMPLE_TEXT for w in sent.split()]
    sents = [[rng.choice(words) for _ in range(rng.choice([1, 2, 3, 30, 60, 120]))] for _ in range(120)]
    assert gc.isenabled()
    fast = tagger.predict(sents, batch_size=120)
    assert gc.isenabled()
    # the plain path: one sentence at a time, no cache (grad mode off but not inference mode)
    with torch.no_grad():
        for sent, pred in zip(sents, fast):
            ids, _ = tagger.model.decode(make_batch(tagger.model, [sent]), with_confidence=False)
            tags = [tagger.labels[i] for i in ids[0].tolist()]
            assert pred.tags == (convert(tags, tagger.scheme, "IOB2") if tagger.scheme != "IOB2" else tags)


def _old_prediction(labels: list[str], scheme: str, words: list[str], tag_ids: list[int],
                    conf: list[float]) -> tuple[list[str], list[tuple[int, int, str, float]]]:
    """Tags and entities by the string route: convert to IOB2, then read spans from the tags."""
    tags = [labels[t] for t in tag_ids]
    if scheme != "IOB2":
        tags = convert(tags, scheme, "IOB2")
    ents = [(s, e, lab, round(sum(conf[s:e]) / (e - s), 6)) for s, e, lab in spans_from_tags(tags, "IOB2")]
    return tags, ents


def test_label_table_and_prediction_equal_the_string_route() -> None:
    rng = random.Random(3)
    for scheme, prefixes in (("IOB2", "BI"), ("BIOES", "BIES"), ("IOB1", "BI")):
        labels = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC", "MISC") for p in prefixes]
        table = LabelTable(labels)
        predictor = Predictor(None, labels, "ner", scheme)  # type: ignore[arg-type]  # no text to tokenize
        for _ in range(400):
            n = rng.randint(1, 12)
            # mostly O, and any sequence at all (invalid ones too, as a softmax head can give)
            ids = [0 if rng.random() < 0.5 else rng.randrange(len(labels)) for _ in range(n)]
            assert table.spans(ids) == spans_from_tags([labels[i] for i in ids], scheme)
            words = _random_words(rng, n)
            conf = [rng.random() for _ in range(n)]
            rounded = confidence_rows([conf])[0]  # one rounding per batch, as the runtimes give them
            assert rounded == [round(c, 6) for c in conf]
            pred = predictor.make_prediction(words, word_offsets(words), ids, rounded)
            tags, ents = _old_prediction(labels, scheme, words, ids, [round(c, 6) for c in conf])
            assert pred.tags == tags
            assert [(e.start, e.end, e.label, e.score) for e in pred.entities] == ents
            for e in pred.entities:
                assert e.text == " ".join(words[e.start: e.end])
                assert " ".join(words)[e.start_char: e.end_char] == e.text


def test_char_features_made_in_inference_mode_give_the_same_vectors() -> None:
    rng = random.Random(4)
    words = _random_words(rng, 50)
    for emb in _char_parts():
        emb.initialize([words])
        emb.eval()
        batch = [[rng.choice(words) for _ in range(rng.randint(1, 9))] for _ in range(6)]
        with torch.no_grad():
            plain = emb(emb.featurize(batch))
        with torch.inference_mode():
            feats = emb.featurize(batch)
            assert "chars" not in feats  # characters are looked up for unseen words only, in forward
            torch.testing.assert_close(emb(feats), plain, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(emb(emb.featurize(batch)), plain, rtol=1e-5, atol=1e-5)


def test_spacy_tokenizer_vocabulary_stays_bounded_on_a_long_stream() -> None:
    from seqtag.tokenizers import SpacyTokenizer

    tok = SpacyTokenizer("en")
    tok.max_new_strings = 200
    sizes = []
    for i in range(400):
        text = f"Company{i} bought Widget{i}-{i * 7} for ${i}.5m"
        toks = tok(text)
        assert [text[t.start: t.end] for t in toks] == [t.text for t in toks]
        assert toks[0].text == f"Company{i}"
        sizes.append(len(tok.nlp.vocab.strings) - tok._base_strings)
    assert max(sizes) <= 200 + 20  # one text's strings beyond the limit at most
    assert min(sizes[100:]) < 100  # it was made afresh along the way


def test_length_groups_cover_sorted_words_with_their_own_widths() -> None:
    assert length_groups([1] * 500 + [30] * 10) == [(0, 500, 1), (500, 510, 30)]
    assert length_groups([3, 4, 5]) == [(0, 3, 5)]  # too few cells to pay for a second group
    assert length_groups([5, 2, 7] * 300) == [(0, 900, 7)]  # not sorted: one group
    assert length_groups([]) == []
    rng = random.Random(0)
    lengths = sorted(rng.randint(1, 30) for _ in range(2000))
    groups = length_groups(lengths)
    assert [g[0] for g in groups] == [0] + [g[1] for g in groups[:-1]] and groups[-1][1] == len(lengths)
    assert all(width == max(lengths[a:b]) for a, b, width in groups)
    assert sum((b - a) * width for a, b, width in groups) < 0.6 * len(lengths) * 30


def test_char_groups_give_the_vectors_and_gradients_of_one_padded_batch() -> None:
    rng = random.Random(5)
    words = _random_words(rng, 400)
    batch = [[rng.choice(words) for _ in range(rng.randint(1, 30))] for _ in range(40)]
    for emb in _char_parts():
        emb.initialize([words])
        for p in emb.parameters():
            torch.nn.init.normal_(p, std=0.7)
        feats = emb.featurize(batch)
        assert len(feats["_groups"]) > 1
        lengths = feats["lengths"].tolist()
        assert lengths == sorted(lengths)  # the batch's distinct words, shortest first
        grouped = emb(feats)
        grouped.pow(2).sum().backward()
        grads = [p.grad.clone() for p in emb.parameters()]
        emb.zero_grad()
        whole = emb({k: v for k, v in feats.items() if k != "_groups"})  # one batch padded to the longest
        whole.pow(2).sum().backward()
        torch.testing.assert_close(grouped, whole, rtol=1e-5, atol=1e-5)
        for got, want in zip(grads, (p.grad for p in emb.parameters())):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        with torch.no_grad():  # each token still gets its own word's vector
            for i, j in [(0, 0), (7, 3), (39, len(batch[39]) - 1)]:
                if j < len(batch[i]):
                    torch.testing.assert_close(grouped[i, j], emb.encode_strings([batch[i][j]])[0],
                                               rtol=1e-5, atol=1e-5)
