"""Torch-free tokenization matches ruclip's RuCLIPProcessor exactly."""

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
