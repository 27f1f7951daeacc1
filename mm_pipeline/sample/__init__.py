"""The synthetic sample catalogue: Russian Wildberries-style product cards with synthetic product photos.

``generate_sample`` writes ``out_dir/batches/batch_NNN.parquet`` and one JPEG per product under
``out_dir/images/<nm>.jpg``, the input that ``mm-pipeline demo`` and the tests feed to the pipeline; everything
follows from ``seed`` alone, so two runs with the same arguments give byte-identical files. Text carries gender
and age only in words (женский, для девочки, детский, ...) and the noise of a real marketplace (HTML, emoji,
CAPS, odd whitespace, ``ё`` written as ``е``, ~5% empty descriptions); each photo shows its sub-category's
silhouette in the colour named in the text, with random pose, backdrop and lighting; ~11% of rows are
re-listings (``dup_group`` >= 0: same product, new ``nm``, reworded text, price within ±5%, another photo of the
same object); each batch holds 3-6 unflagged bad rows (missing photo, blank title, ``nm`` repeated later).

Modules, in the order they build on each other: ``shapes`` (drawing primitives), ``silhouettes`` (one drawing
per sub-category), ``vocabulary`` (categories, words, colours), ``cards`` (the card being built), ``text``
(titles and descriptions), ``photos`` (rendering), ``catalogue`` (assembly and files).
"""

from mm_pipeline.sample.catalogue import MIN_PRODUCTS_PER_BATCH, SampleSummary, generate_sample
from mm_pipeline.sample.vocabulary import ADULT_CATEGORIES, SUB_CATEGORIES

__all__ = ["ADULT_CATEGORIES", "MIN_PRODUCTS_PER_BATCH", "SUB_CATEGORIES", "SampleSummary", "generate_sample"]
