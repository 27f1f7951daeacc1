"""Training the compact model's BPE keeps youtokentome's C-level log off the console (it goes to the debug
log), except when training fails, where what youtokentome printed says why."""

from __future__ import annotations

import logging

import pytest

from mm_pipeline.prep.tokens import TextTokenizer, train_bpe

TEXTS = [f"{kind} {colour}" for kind in ("Шапка вязаная", "Кепка", "Берет") for colour in ("черная", "синяя")]


def test_bpe_training_prints_nothing_and_logs_youtokentome_at_debug(tmp_path, capfd, caplog):
    with caplog.at_level(logging.DEBUG, logger="mm_pipeline.prep.tokens"):
        path = train_bpe(TEXTS * 20, tmp_path / "bpe.model", vocab_size=300)
    assert capfd.readouterr() == ("", "")
    assert "learning bpe" in caplog.text and "vocab_size: 300" in caplog.text
    assert TextTokenizer(path).vocab_size > 100


def test_a_failing_bpe_training_prints_what_youtokentome_said(tmp_path, capfd):
    with pytest.raises(ValueError, match="Vocabulary size too small"):
        train_bpe(TEXTS, tmp_path / "bpe.model", vocab_size=5)
    assert "number of unique characters" in capfd.readouterr().err
