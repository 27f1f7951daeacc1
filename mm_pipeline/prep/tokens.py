"""ruCLIP tokenization without torch: youtokentome BPE ids laid out exactly as ``RuCLIPProcessor`` does.

Lower-cased text, at most ``context_length - 2`` BPE ids between BOS and EOS, zero padding. Because the
ruCLIP text tower is causal and pools at the EOS token, padding after the last EOS of a batch can be
trimmed without changing any result. Token stores keep a batch's ids on disk (int32 ``.npy``, memory-mapped)
so training reads minibatches without holding every product's ids in memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import tempfile
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import youtokentome as yttm
from wurlitzer import pipes

from mm_pipeline.storage import write_npy_rows

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
CONTEXT_LENGTH = 77
# a text whose characters are more than this share unknown to the BPE (a script it never saw: Georgian,
# Armenian, Chinese in a Russian catalogue) is "mostly unknown": its text vector says next to nothing
MOSTLY_UNKNOWN_SHARE = 0.5
_WORD_START = "\u2581"  # youtokentome's word-boundary mark in subword pieces


# lower-case characters a Russian marketplace's cards are likely to hold, each given a token by every BPE this
# project trains even when the training texts lack it: Cyrillic of Russia and its neighbours, Latin with the
# diacritics of brand names, digits, ASCII and Russian typographic punctuation, units and currency signs
LIKELY_CHARACTERS = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    "іїєґўәғқңөұүһ"
    "abcdefghijklmnopqrstuvwxyz"
    "àáâäãåæçèéêëìíîïñòóôöõøœßùúûüýÿ"
    "0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "«»„“”‘’–—…•·"
    "₽€£¥₸‰№°×±÷²³½¼¾µ™®©"
)


def train_bpe(
    texts: Iterable[str],
    model_path: Path | str,
    vocab_size: int,
    seed_text: str = " ".join(LIKELY_CHARACTERS),
) -> Path:
    """Train a youtokentome BPE on ``texts`` (lower-cased, as the processor encodes) with ruCLIP's special ids.

    Every character of the texts and of ``seed_text`` (by default :data:`LIKELY_CHARACTERS`, space-separated,
    so it adds characters, not merges) gets a token (``coverage=1``): only a script absent from both is
    unknown. ``vocab_size`` must exceed the number of distinct characters; youtokentome raises otherwise.
    """
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as corpus:
        for text in texts:
            corpus.write(text.lower().replace("\n", " ") + "\n")
        corpus.write(seed_text + "\n")
    # youtokentome prints its parameters and merge samples from C++ to stderr (~25 lines a run): they go to
    # this module's debug log, and to stderr when training fails
    trainer_output = io.StringIO()
    try:
        with pipes(stdout=None, stderr=trainer_output):
            yttm.BPE.train(
                data=corpus.name,
                model=str(model_path),
                vocab_size=vocab_size,
                coverage=1.0,
                n_threads=1,  # deterministic merges
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
            )
    except Exception:
        sys.stderr.write(trainer_output.getvalue())
        raise
    finally:
        Path(corpus.name).unlink(missing_ok=True)
    logging.getLogger(__name__).debug("youtokentome: %s", trainer_output.getvalue())
    return model_path


def _file_digest(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TextTokenizer:
    """``bpe`` is an already loaded model of ``bpe_path`` (e.g. a ``RuCLIPProcessor``'s), else it is loaded."""

    def __init__(
        self, bpe_path: Path | str, context_length: int = CONTEXT_LENGTH, bpe: yttm.BPE | None = None
    ):
        self.bpe_path = Path(bpe_path)
        self.bpe = bpe if bpe is not None else yttm.BPE(str(bpe_path))
        self.context_length = context_length

    @classmethod
    def from_processor(cls, processor, bpe_path: Path | str) -> TextTokenizer:
        """The BPE and context length of a ``ruclip.RuCLIPProcessor`` loaded from ``bpe_path``'s folder."""
        return cls(bpe_path, processor.text_seq_length, processor.tokenizer)

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the ids of some text would: the BPE model's bytes and the context length."""
        return hashlib.sha256(f"{_file_digest(self.bpe_path)}:{self.context_length}".encode()).hexdigest()[
            :16
        ]

    @property
    def vocab_size(self) -> int:
        return self.bpe.vocab_size()

    def unknown_shares(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[N]``: share of each text's characters (spaces aside) that the BPE reads as the unknown
        token, over the tokens the model reads (the first ``context_length - 2``); 0 for an empty text.

        youtokentome maps each run of characters it has no symbol for to one ``UNK_ID``, so a title in a script
        the BPE never saw becomes ``▁ UNK ▁ UNK …`` and every such title gets nearly the same text vector.
        """
        lowered = [t.lower() for t in texts]
        ids = self.bpe.encode(lowered, output_type=yttm.OutputType.ID, dropout_prob=0.0)
        pieces = self.bpe.encode(lowered, output_type=yttm.OutputType.SUBWORD, dropout_prob=0.0)
        shares = np.zeros(len(lowered), dtype=np.float32)
        limit = self.context_length - 2
        for row, (row_ids, row_pieces) in enumerate(zip(ids, pieces, strict=True)):
            known = unknown = 0
            for token, piece in zip(row_ids[:limit], row_pieces[:limit], strict=True):
                length = len(piece.replace(_WORD_START, ""))
                if token == UNK_ID:
                    unknown += length
                else:
                    known += length
            shares[row] = unknown / (known + unknown) if known + unknown else 0.0
        return shares

    def mostly_unknown(self, texts: Sequence[str]) -> np.ndarray:
        """bool ``[N]``: texts whose :meth:`unknown_shares` exceed ``MOSTLY_UNKNOWN_SHARE``."""
        return self.unknown_shares(texts) > MOSTLY_UNKNOWN_SHARE

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


def token_store_path(texts_parquet: Path | str, tokenizer: TextTokenizer, store_dir: Path | str) -> Path:
    """Where the ids of a parquet file's ``text`` column live: keyed by the file's content and the tokenizer."""
    key = hashlib.sha256(f"{_file_digest(texts_parquet)}:{tokenizer.fingerprint}".encode()).hexdigest()[:16]
    return Path(store_dir) / f"{Path(texts_parquet).stem}.{key}.tokens.npy"


def write_token_store(
    texts_parquet: Path | str, tokenizer: TextTokenizer, store_dir: Path | str, chunk_rows: int = 2048
) -> Path:
    """Tokenize the ``text`` column into an int32 ``[N, context_length]`` store, ``chunk_rows`` texts at a time.

    An existing store for the same file content and tokenizer is reused, so a resumed training skips this.
    """
    target = token_store_path(texts_parquet, tokenizer, store_dir)
    if target.exists():
        return target
    parquet = pq.ParquetFile(texts_parquet)
    chunks = (
        tokenizer.encode(chunk.column(0).to_pylist())
        for chunk in parquet.iter_batches(batch_size=chunk_rows, columns=["text"])
    )
    return write_npy_rows(target, (parquet.metadata.num_rows, tokenizer.context_length), np.int32, chunks)


def open_token_store(path: Path | str) -> np.ndarray:
    return np.load(path, mmap_mode="r")
