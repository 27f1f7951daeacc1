"""Torch-free tokenization matches ruclip's RuCLIPProcessor exactly."""

import pandas as pd
from ruclip.processor import RuCLIPProcessor

from mm_pipeline.prep.tokens import EOS_ID, TextTokenizer, token_lengths, train_bpe, trim_padding

TEXTS = ["Платье женское летнее красное", "Куртка мужская зимняя", "Смартфон чёрный " * 30, "кроссовки"] * 20


def test_ids_equal_ruclip_processor(tmp_path):
    bpe = train_bpe(TEXTS, tmp_path / "bpe.model", vocab_size=400)
    ours = TextTokenizer(bpe).encode(TEXTS[:4])
    reference = RuCLIPProcessor(str(bpe))(text=TEXTS[:4])["input_ids"].numpy()
    assert (ours == reference).all()
    assert ours.shape == (4, 77) and (ours == EOS_ID).sum(axis=1).tolist() == [1, 1, 1, 1]


def test_trim_padding_keeps_every_eos(tmp_path):
    ids = TextTokenizer(train_bpe(TEXTS, tmp_path / "bpe.model", vocab_size=400)).encode(TEXTS[:2])
    trimmed = trim_padding(ids)
    assert trimmed.shape[1] == token_lengths(ids).max() < 77
    assert ((trimmed == EOS_ID).sum(axis=1) == 1).all()


def test_likely_characters_are_known_without_training_texts_holding_them(tmp_path):
    tokenizer = TextTokenizer(train_bpe(TEXTS, tmp_path / "bpe.model", vocab_size=400))
    unseen = ["Ёлка №5 — 100% хлопок, 40×60 см, 1 999 ₽", "Crème brûlée Ørsted «Її» Straße", "Қазақ әліпбиі"]
    assert not any(ch in "".join(TEXTS).lower() for ch in "№—%×₽èûøїß")  # none was in the training texts
    assert tokenizer.unknown_shares(unseen).tolist() == [0.0, 0.0, 0.0]
    assert tokenizer.unknown_shares(["შავი ქუდი"])[0] == 1.0  # a script absent from both stays unknown


def test_a_bpe_learned_twice_on_the_same_texts_is_the_same(tmp_path, small_sample):
    """youtokentome is built with DETERMINISTIC_QUEUE (Makefile): ties between equally frequent merges are
    broken by token ids, not by the order a hash table happens to yield them, so the compact model's
    vocabulary, and with it the model, is the same on every run over the same catalogue."""
    products = pd.concat(
        pd.read_parquet(path) for path in sorted((small_sample / "batches").glob("*.parquet"))
    )
    texts = (products["title"] + " " + products["description"].fillna("")).tolist()
    models = [
        train_bpe(texts, tmp_path / f"bpe{run}.model", vocab_size=2000).read_bytes() for run in range(3)
    ]
    assert models[0] == models[1] == models[2]
