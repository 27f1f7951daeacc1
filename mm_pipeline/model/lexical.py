"""The lexical channel: dense projections of sparse text features, fitted on the training split.

TF-IDF over word 1–2-grams of the whole text and character 3–5-grams (within word boundaries) of its first
``CHAR_PREFIX`` characters (the title and brand open the composed text: character n-grams there match word
forms and model numbers, over whole descriptions they mostly match boilerplate), each block L2-normalized.
The terms are hashed into ``HASHED_FEATURES`` buckets per block (scikit-learn ``HashingVectorizer``, then
``TfidfTransformer`` whose IDF is fitted on the training split), not looked up in a vocabulary: a term no
training text has (a brand or model number first listed after training) gets the largest IDF and still
counts, so two listings of a product that arrived in a later batch share it. Measured on flipkart1050's eval
products and one synthetic re-listing each (lexical channel alone, pair F1): 0.867 with a vocabulary of
the training split's terms, 0.925 hashed. Then two projections of it, each L2-normalized and weighted
equally, so the channel's cosine is the mean of theirs:

* ``lsa``: a truncated SVD (latent semantic analysis, Deerwester et al. 1990) of the buckets that at least two
  training texts have to ``LSA_DIM`` dimensions (fewer when the training split has fewer texts or terms). The
  components keep their singular values, so the trailing ones are small and a cosine search or a probe that
  keeps the vector's geometry (:func:`mm_pipeline.evaluation.probes.center_and_scale`) is not swamped by them.
  It carries what many texts share: kinds of product, materials, price bands. Measured on the eval split of
  flipkart1050 (739 training texts, logistic-probe F1, category / price_range): 64 dims 0.914 / 0.435, 128
  dims 0.907 / 0.460, 256 dims 0.891 / 0.489, 512 dims 0.901 / 0.501: price bands live in rarer terms than
  categories do.
* ``random``: a sparse random projection (Li, Hastie & Church 2006, "Very sparse random projections";
  scikit-learn ``SparseRandomProjection``, density ``RANDOM_DENSITY``) of every bucket to ``RANDOM_DIM``
  dimensions, whose inner products equal the TF-IDF cosines in expectation, with an error of about
  ``1/sqrt(RANDOM_DIM)`` (Johnson–Lindenstrauss). Each term lands on 4 coordinates on average (with a density
  of ``1/sqrt(features)``, one: a third of the terms would land on none). Over a vocabulary at 256 dimensions
  (error ~0.06) the fused probe F1 depended on the projection's seed: over seeds 0/1/2, 1,024 dimensions
  (error ~0.03) scored higher on every seed on the 10,000-product sample's price_range (0.609–0.618 vs
  0.596–0.600) and flipkart1050's sub_category (0.874–0.886 vs 0.865–0.873), category and duplicates within
  noise, for ~25–30% more probe time in the metric assets (10k sample: sub_category 62 → 76 s in one process,
  every label metric 202 → 263 s); 512 did not separate from 256 (price_range 0.597–0.611). The SVD drops the
  terms few texts have (a model number, a small brand), and those are what tell one product from its
  near-twin: on re-listed products (duplicates pair F1 of the fused vector, fusion weights chosen as usual,
  whole ``mm-pipeline run``) flipkart1050 went from 0.811 ± 0.031 to 0.913–0.920 ± 0.02 in two runs (TF-IDF
  reference 0.916) and a 10,000-product sample from 0.389 to 0.458 ± 0.043 (TF-IDF 0.421). Probe F1 stayed
  within noise (flipkart category 0.905 → 0.913–0.916, price_range 0.498 → 0.503–0.522; 10k price_range 0.574
  → 0.572) except price_range on ``make demo``'s 3,000 products (0.562 → 0.542 ± 0.017), whose duplicates went
  0.370 → 0.490.

It carries exact words, brands and model numbers that a small text tower trained on a few thousand pairs
does not learn, and helps a pretrained ruCLIP the same way. It is fitted on the training split only, saved
beside the model weights and applied by ONNX inference without torch (numpy + scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
from scipy import sparse as sp
from sklearn.base import BaseEstimator
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer
from sklearn.feature_selection import SelectorMixin
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import Normalizer
from sklearn.random_projection import SparseRandomProjection

from mm_pipeline.storage import atomic_path

LSA_DIM = 256
RANDOM_DIM = 1024
CHAR_PREFIX = 200
MIN_TEXTS = 8
HASHED_FEATURES = 2**18  # buckets per block (words, characters)
RANDOM_DENSITY = 4 / RANDOM_DIM  # a term lands on 4 of the random part's coordinates on average


class MinDocumentFrequency(SelectorMixin, BaseEstimator):
    """Keeps the columns of a sparse term matrix that at least ``min_df`` of the fitted rows have (what
    ``TfidfVectorizer``'s ``min_df`` does to a vocabulary, for hashed terms)."""

    def __init__(self, min_df: int = 2):
        self.min_df = min_df

    def fit(self, x, y=None):
        x = sp.csr_matrix(x)
        self.n_features_in_ = x.shape[1]
        self.mask_ = np.bincount(x.indices, minlength=x.shape[1]) >= self.min_df
        return self

    def _get_support_mask(self) -> np.ndarray:
        return self.mask_


class TransposedRandomProjection(SparseRandomProjection):
    """``SparseRandomProjection`` that multiplies by its components transposed once into CSR. sklearn multiplies
    by the view ``components_.T``, which scipy converts to CSR on every call: with 2^19 hashed features and
    density 4/1024 (2 M non-zeros) 0.055 s per 256 texts, 0.017 s pre-transposed (flipkart1050 texts).
    Dense float32 ``[N, n_components]`` out; the transposed copy is rebuilt after loading, not saved."""

    def transform(self, x) -> np.ndarray:
        if getattr(self, "_transposed", None) is None:
            self._transposed = sp.csr_matrix(self.components_.T)
        return (sp.csr_matrix(x) @ self._transposed).toarray()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_transposed", None)
        return state


def _hashed_tfidf(**analysis) -> Pipeline:
    return Pipeline(
        [
            (
                "hash",
                HashingVectorizer(
                    n_features=HASHED_FEATURES, alternate_sign=False, norm=None, dtype=np.float32, **analysis
                ),
            ),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ]
    )


def title_prefix(text: str) -> str:
    """What the character n-grams read: the lower-cased first ``CHAR_PREFIX`` characters."""
    return text[:CHAR_PREFIX].lower()


class LexicalProjection:
    """Texts → float32 ``[N, dim]`` unit vectors: ``min(LSA_DIM, texts - 1, terms - 1)`` (at least 1) LSA
    dimensions followed by ``RANDOM_DIM`` random-projection ones (1,280 on a catalogue of a few hundred
    products or more). A projection saved before (over a vocabulary, or LSA only) loads and applies as it was
    fitted."""

    def __init__(self, pipeline: Pipeline, words: CountVectorizer | None = None):
        self.pipeline = pipeline
        self.words = words  # the words at least two training texts have (None: a projection saved before)

    @property
    def dim(self) -> int:
        return len(self.pipeline[-1].get_feature_names_out())

    def known(self, texts: Sequence[str]) -> np.ndarray:
        """bool ``[len(texts)]``: whether a text has a word that at least two training texts have. Hashed terms
        cannot say it (an unseen term may share a bucket with a seen one): a text of new words only still has
        a lexical vector, which matches the same words in other texts but nothing the model learned."""
        if self.words is None:  # over a vocabulary: a known term gives a non-zero vector
            return self.transform(texts).any(axis=1)
        return self.words.transform(list(texts)).getnnz(axis=1) > 0

    @classmethod
    def fit(cls, texts: Sequence[str], lsa_dim: int | None = None, seed: int = 0) -> LexicalProjection:
        """Fit on ``texts`` (the training split). Raises ``ValueError`` with fewer than ``MIN_TEXTS`` texts."""
        if len(texts) < MIN_TEXTS:
            raise ValueError(
                f"the lexical channel needs at least {MIN_TEXTS} training texts, got {len(texts)}"
            )
        features = FeatureUnion(
            [
                ("words", _hashed_tfidf(ngram_range=(1, 2))),
                ("chars", _hashed_tfidf(analyzer="char_wb", ngram_range=(3, 5), preprocessor=title_prefix)),
            ]
        )
        sparse = features.fit_transform(texts).tocsr()
        seen = MinDocumentFrequency(2).fit(sparse)
        terms = int(seen.mask_.sum())
        n_components = max(1, min(lsa_dim or LSA_DIM, sparse.shape[0] - 1, terms - 1))
        svd = TruncatedSVD(n_components, algorithm="randomized", n_iter=5, random_state=seed)
        random = TransposedRandomProjection(RANDOM_DIM, density=RANDOM_DENSITY, random_state=seed)
        projections = FeatureUnion(
            [
                ("lsa", Pipeline([("seen", seen), ("svd", svd), ("unit", Normalizer())])),
                ("random", Pipeline([("projection", random), ("unit", Normalizer())])),
            ]
        )
        projections.fit(sparse)
        words = CountVectorizer(min_df=2, binary=True, dtype=np.int8).fit(texts)
        return cls(Pipeline([("tfidf", features), ("projections", projections)]), words)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, L2-normalized (an empty text gives zeros)."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        dense = np.asarray(self.pipeline.transform(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return dense / np.maximum(norms, 1e-12)

    def save(self, target: Path | str) -> Path:
        with atomic_path(target) as tmp:
            joblib.dump({"pipeline": self.pipeline, "words": self.words}, tmp)
        return Path(target)

    @classmethod
    def load(cls, path: Path | str) -> LexicalProjection:
        saved = joblib.load(path)
        return cls(**saved) if isinstance(saved, dict) else cls(saved)  # a bare pipeline: saved before
