"""The fine-tuning recipe follows from the base model's origin, with the configured overrides."""

from __future__ import annotations

import json

from mm_pipeline.layout import Layout
from mm_pipeline.model.recipe import COMPACT_ORIGIN, recipe_for
from mm_pipeline.model.train import RECIPES


def test_the_recipe_follows_the_base_models_origin(tmp_path):
    layout = Layout(tmp_path)
    training = layout.model_training("base")
    training.parent.mkdir(parents=True)
    training.write_text(json.dumps({"origin": COMPACT_ORIGIN, "bpe_corpus_texts": 10}))
    compact = recipe_for(layout, epochs=2)
    assert (compact.name, compact.config.epochs) == ("compact", 2)
    assert compact.config.batch_size == RECIPES["compact"].batch_size
    training.write_text(json.dumps({"origin": "pretrained from /models/ruclip"}))
    assert recipe_for(layout, batch_size=8).name == "pretrained"
