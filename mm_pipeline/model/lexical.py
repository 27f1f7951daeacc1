"""The lexical channel: dense projections of sparse text features, fitted on the training split.

TF-IDF over word 1–2-grams of the whole text and character 3–5-grams (within word boundaries) of its first
``CHAR_PREFIX`` characters (the title and brand open the composed text: character n-grams there match word
forms and model numbers, over whole descriptions they mostly match boilerplate), each block L2-normalized
(scikit-learn ``TfidfVectorizer``), then two projections of it, each L2-normalized and weighted equally, so
the channel's cosine is the mean of theirs:

* ``lsa``: a truncated SVD (latent semantic analysis, Deerwester et al. 1990) to ``LSA_DIM`` dimensions
  (fewer when the training split has fewer texts or terms). The components keep their singular values, so
  the trailing ones are small and a cosine search or a probe that keeps the vector's geometry
  (:func:`mm_pipeline.evaluation.probes.center_and_scale`) is not swamped by them. It carries what many
  texts share: kinds of product, materials, price bands. Measured on the eval split of flipkart1050 (739
  training texts, logistic-probe F1, category / price_range): 64 dims 0.914 / 0.435, 128 dims 0.907 / 0.460,
  256 dims 0.891 / 0.489, 512 dims 0.901 / 0.501: price bands live in rarer terms than categories do.
* ``random``: a sparse random projection (Li, Hastie & Church 2006, "Very sparse random projections";
  scikit-learn ``SparseRandomProjection``, density ``1/sqrt(features)``) to ``RANDOM_DIM`` dimensions, whose
  inner products equal the TF-IDF cosines in expectation, with an error of about ``1/sqrt(RANDOM_DIM)``
  (Johnson–Lindenstrauss). Each term lands on ``RANDOM_DIM/sqrt(features)`` coordinates on average (about
  8 on flipkart1050's 17k features). At 256 dimensions (error ~0.06) the fused probe F1 depended on the
  projection's seed: over seeds 0/1/2, 1,024 dimensions (error ~0.03) scored higher on every seed on the
  10,000-product sample's price_range (0.609–0.618 vs 0.596–0.600) and flipkart1050's sub_category
  (0.874–0.886 vs 0.865–0.873), category and duplicates within noise, for ~25–30% more probe time in the
  metric assets (10k sample: sub_category 62 → 76 s in one process, every label metric 202 → 263 s); 512
  did not separate from 256 (price_range 0.597–0.611). The
  SVD drops the terms few texts have (a model number, a small brand), and those are what tell one product
  from its near-twin: on re-listed products (duplicates pair F1 of the fused vector, fusion weights chosen
  as usual, whole ``mm-pipeline run``) flipkart1050 went from 0.811 ± 0.031 to 0.913–0.920 ± 0.02 in two
  runs (TF-IDF reference 0.916) and a 10,000-product sample from 0.389 to 0.458 ± 0.043 (TF-IDF 0.421).
  Probe F1 stayed within noise (flipkart category 0.905 → 0.913–0.916, price_range 0.498 → 0.503–0.522;
  10k price_range 0.574 → 0.572) except price_range on ``make demo``'s 3,000 products (0.562 → 0.542 ±
  0.017), whose duplicates went 0.370 → 0.490.

It carries exact words, brands and model numbers that a small text tower trained on a few thousand pairs
does not learn, and helps a pretrained ruCLIP the same way. It is fitted on the training split only, saved
beside the model weights and applied by ONNX inference without torch (numpy + scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import Normalizer
from sklearn.random_projection import SparseRandomProjection

from mm_pipeline.storage import atomic_path

LSA_DIM = 256
RANDOM_DIM = 1024
CHAR_PREFIX = 200
MIN_TEXTS = 8


def title_prefix(text: str) -> str:
    """What the character n-grams read: the lower-cased first ``CHAR_PREFIX`` characters."""
    return text[:CHAR_PREFIX].lower()


class LexicalProjection:
    """Texts → float32 ``[N, dim]`` unit vectors: ``min(LSA_DIM, texts - 1, features - 1)`` (at least 1) LSA
    dimensions followed by ``min(RANDOM_DIM, features)`` random-projection ones (1,280 on a catalogue of a few
    hundred products or more). A projection saved before the random part existed (LSA only) loads and applies
    as it was fitted."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    @property
    def dim(self) -> int:
        return len(self.pipeline[-1].get_feature_names_out())

    @classmethod
    def fit(cls, texts: Sequence[str], lsa_dim: int | None = None, seed: int = 0) -> LexicalProjection:
        """Fit on ``texts`` (the training split). Raises ``ValueError`` with fewer than ``MIN_TEXTS`` texts."""
        if len(texts) < MIN_TEXTS:
            raise ValueError(
                f"the lexical channel needs at least {MIN_TEXTS} training texts, got {len(texts)}"
            )
        features = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(3, 5),
                        min_df=2,
                        sublinear_tf=True,
                        preprocessor=title_prefix,
                        dtype=np.float32,
                    ),
                ),
            ]
        )
        sparse = features.fit_transform(texts)
        n_components = max(1, min(lsa_dim or LSA_DIM, sparse.shape[0] - 1, sparse.shape[1] - 1))
        svd = TruncatedSVD(n_components, algorithm="randomized", n_iter=5, random_state=seed)
        # the random matrix depends only on the number of features and the seed
        random = SparseRandomProjection(
            min(RANDOM_DIM, sparse.shape[1]), dense_output=True, random_state=seed
        )
        projections = FeatureUnion(
            [
                ("lsa", Pipeline([("svd", svd), ("unit", Normalizer())])),
                ("random", Pipeline([("projection", random), ("unit", Normalizer())])),
            ]
        )
        projections.fit(sparse)
        return cls(Pipeline([("tfidf", features), ("projections", projections)]))

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, L2-normalized (an empty or out-of-vocabulary text gives zeros)."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        dense = np.asarray(self.pipeline.transform(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return dense / np.maximum(norms, 1e-12)

    def save(self, target: Path | str) -> Path:
        with atomic_path(target) as tmp:
            joblib.dump(self.pipeline, tmp)
        return Path(target)

    @classmethod
    def load(cls, path: Path | str) -> LexicalProjection:
        return cls(joblib.load(path))
