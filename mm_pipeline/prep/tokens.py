"""ruCLIP tokenization without torch: youtokentome BPE ids laid out exactly as ``RuCLIPProcessor`` does.

Lower-cased text, at most ``context_length - 2`` BPE ids between BOS and EOS, zero padding. Because the
ruCLIP text tower is causal and pools at the EOS token, padding after the last EOS of a batch can be
trimmed without changing any result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import youtokentome as yttm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
CONTEXT_LENGTH = 77


def train_bpe(texts: Sequence[str], model_path: Path | str, vocab_size: int, seed_text: str = "") -> Path:
    """Train a youtokentome BPE on ``texts`` (lower-cased, as the processor encodes) with ruCLIP's special ids."""
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as corpus:
        for text in texts:
            corpus.write(text.lower().replace("\n", " ") + "\n")
        corpus.write(seed_text)
    try:
        yttm.BPE.train(
            data=corpus.name,
            model=str(model_path),
            vocab_size=vocab_size,
            coverage=0.9999,
            n_threads=1,  # deterministic merges
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
        )
    finally:
        Path(corpus.name).unlink(missing_ok=True)
    return model_path


class TextTokenizer:
    def __init__(self, bpe_path: Path | str, context_length: int = CONTEXT_LENGTH):
        self.bpe = yttm.BPE(str(bpe_path))
        self.context_length = context_length

    @property
    def vocab_size(self) -> int:
        return self.bpe.vocab_size()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``int64 [N, context_length]``: BOS, ids, EOS, zeros."""
        pieces = self.bpe.encode([t.lower() for t in texts], output_type=yttm.OutputType.ID, dropout_prob=0.0)
        ids = np.zeros((len(pieces), self.context_length), dtype=np.int64)
        for row, tokens in enumerate(pieces):
            tokens = tokens[: self.context_length - 2]
            ids[row, 0] = BOS_ID
            ids[row, 1 : len(tokens) + 1] = tokens
            ids[row, len(tokens) + 1] = EOS_ID
        return ids


def token_lengths(ids: np.ndarray) -> np.ndarray:
    """Length of each row up to and including its EOS."""
    return (ids == EOS_ID).argmax(axis=1) + 1


def trim_padding(ids: np.ndarray) -> np.ndarray:
    """Drop the columns after the last EOS of the batch (exact for ruCLIP's causal text tower)."""
    return ids[:, : int(token_lengths(ids).max())] if len(ids) else ids
