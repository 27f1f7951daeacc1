"""The channels fitted beside the towers: lexical projection, fusion weights, duplicate-aware training."""

from __future__ import annotations

import threading

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from mm_pipeline.inference.encoders import OnnxEncoders, fuse, read_vectors, write_embeddings
from mm_pipeline.model.channels import fit_channels
from mm_pipeline.model.clip import load_folder, save_folder
from mm_pipeline.model.export import check_parity, export_towers
from mm_pipeline.model.files import LEXICAL_FILE
from mm_pipeline.model.fusion import DuplicateRows, choose_fusion_weights, simplex_grid
from mm_pipeline.model.lexical import LSA_DIM, RANDOM_DIM, LexicalProjection
from mm_pipeline.model.losses import contrastive_loss, same_product
from mm_pipeline.model.pairs import BatchFiles, load_pairs, training_split
from mm_pipeline.storage import write_parquet
from mm_pipeline_tests.model.test_model import prepare

PROBES = ["Платье женское летнее", "Кроссовки мужские беговые", "Кружка керамическая"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_sample) -> list[BatchFiles]:
    return prepare(small_sample, tmp_path_factory.mktemp("channels"))


def _fit(tiny_ruclip_dir, batches):
    model = load_folder(tiny_ruclip_dir)
    pairs, products = load_pairs(batches, model.tokenizer, batches[0].cleaned_text.parent / "tokens")
    split = training_split(products, 0.3, 0.1)
    return fit_channels(model.clip, model.tokenizer, batches, pairs, split), split


def _rewrite(batches, tmp_path, mask, new_text) -> list[BatchFiles]:
    """Copies of the batches whose texts are replaced where ``mask`` (over all products in order) is true."""
    tmp_path.mkdir()
    copies, offset = [], 0
    for batch in batches:
        frame = pd.read_parquet(batch.cleaned_text)
        local = mask[offset : offset + len(frame)]
        frame.loc[local, "text"] = new_text
        offset += len(frame)
        path = write_parquet(frame, tmp_path / batch.cleaned_text.name)
        copies.append(BatchFiles(batch.name, path, batch.image_tensors))
    return copies


def test_lexical_channel_is_fitted_on_the_training_split_only(tmp_path, tiny_ruclip_dir, prepared):
    channels, split = _fit(tiny_ruclip_dir, prepared)
    reference = channels.lexical.transform(PROBES)
    assert reference.shape == (3, channels.lexical.dim)
    assert np.allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)

    eval_changed = _rewrite(prepared, tmp_path / "e", split["eval"], "Кружка кружка керамическая")
    again, _ = _fit(tiny_ruclip_dir, eval_changed)
    assert np.array_equal(again.lexical.transform(PROBES), reference)
    assert again.fusion.weights == channels.fusion.weights  # eval labels and texts never choose weights

    half_of_train = split["train"] & (np.arange(len(split["train"])) % 2 == 0)
    changed, _ = _fit(
        tiny_ruclip_dir, _rewrite(prepared, tmp_path / "t", half_of_train, "Кружка керамическая")
    )
    assert changed.lexical.dim == channels.lexical.dim
    assert not np.allclose(changed.lexical.transform(PROBES), reference, atol=1e-3)


def test_lexical_channel_is_saved_exported_and_applied_identically(tmp_path, tiny_ruclip_dir, prepared):
    channels, _ = _fit(tiny_ruclip_dir, prepared)
    model = load_folder(tiny_ruclip_dir)
    folder = save_folder(
        model.clip,
        model.config,
        model.bpe_path,
        tmp_path / "model",
        extra={"fusion": channels.fusion.as_dict()},
        lexical=channels.lexical,
    )
    reloaded = load_folder(folder)
    assert np.array_equal(reloaded.lexical.transform(PROBES), channels.lexical.transform(PROBES))

    onnx_dir = export_towers(reloaded.clip, folder, tmp_path / "onnx")
    encoders = OnnxEncoders(onnx_dir, "fp32")
    assert encoders.fusion_weights == channels.fusion.weights
    size = model.config["image_resolution"]
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    vectors = encoders.encode(PROBES, images)
    assert np.array_equal(vectors["lexical"], channels.lexical.transform(PROBES))
    assert (
        vectors["fused"].shape[1]
        == encoders.dims["fused"]
        == sum(encoders.dims[c] for c in ("image", "text", "lexical"))
    )
    assert np.allclose(np.linalg.norm(vectors["fused"], axis=1), 1.0, atol=1e-5)

    # write_embeddings makes each chunk's lexical vectors beside the towers, in the image loader's thread
    threads = []
    encode_lexical = encoders.encode_lexical

    def recorded(texts):
        threads.append(threading.current_thread())
        return encode_lexical(texts)

    encoders.encode_lexical = recorded
    written = tmp_path / "written.parquet"
    write_embeddings(
        encoders, np.arange(3), PROBES, lambda start, stop: images[start:stop], written, chunk_size=2
    )
    assert len(threads) == 2 and threading.main_thread() not in threads
    for column in ("lexical", "fused"):
        np.testing.assert_allclose(read_vectors(written, column)[1], vectors[column], atol=1e-6)

    ids = model.tokenizer.encode(PROBES)
    report = check_parity(reloaded.clip, onnx_dir, images, ids, PROBES, reloaded.lexical)
    lexical_rows = [r for r in report.rows if r["tower"] == "lexical"]
    # one row per variant this machine checks: the same file serves them all
    assert [r["variant"] for r in lexical_rows] == report.checked_variants
    assert all(r["passed"] for r in lexical_rows)
    (onnx_dir / LEXICAL_FILE).unlink()
    broken = check_parity(reloaded.clip, onnx_dir, images, ids, PROBES, reloaded.lexical)
    assert not broken.passed and "lexical" in {r["tower"] for r in broken.rows if not r["passed"]}


def test_fused_vector_is_unit_length_and_its_cosine_the_weighted_mean():
    rng = np.random.default_rng(0)
    parts = {
        "image": rng.normal(size=(4, 3)),
        "text": rng.normal(size=(4, 5)),
        "lexical": rng.normal(size=(4, 2)),
    }
    weights = {"image": 0.2, "text": 0.3, "lexical": 0.5}
    fused = fuse(parts, weights)
    assert fused.shape == (4, 10) and fused.dtype == np.float32
    assert np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-6)
    unit = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in parts.items()}
    expected = sum(w * (unit[c][0] @ unit[c][1]) for c, w in weights.items())
    assert fused[0] @ fused[1] == pytest.approx(expected, abs=1e-6)
    assert np.allclose(
        fuse({"image": [[3.0, 4.0]], "text": [[0.0, 2.0]]}, {"image": 0.5, "text": 0.5}),
        [[0.6 / np.sqrt(2), 0.8 / np.sqrt(2), 0.0, 1 / np.sqrt(2)]],
    )


def test_fusion_weights_follow_the_channels_that_carry_labels_and_duplicates():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 30)
    centres = rng.normal(size=(6, 16)) * 4
    channels = {
        "image": rng.normal(size=(180, 16)),  # noise
        "text": centres[labels] + rng.normal(size=(180, 16)),  # the labels
        "lexical": rng.normal(size=(180, 8)),  # noise
    }
    task = np.where(rng.random(180) < 0.1, None, labels.astype(str)).astype(object)
    choice = choose_fusion_weights(channels, {"category": task, "empty": np.full(180, None, dtype=object)})
    assert choice.tasks == ["category"]
    assert choice.weights["text"] == max(choice.weights.values()) >= 0.6
    assert choice.score >= max(choice.channel_scores.values())
    assert choice.channel_scores["text"] > 0.9 > 0.5 > choice.channel_scores["image"]
    assert choice.support_probe_f1["text"] == max(choice.support_probe_f1.values()) > 0.9
    assert len(choice.support_probe_f1) == 7 and choice.support_probe_f1["image"] < 0.5
    assert choice.support_probe_f1["image+text+lexical"] <= choice.support_probe_f1["text"]

    # pairs of rows that only the lexical channel tells apart from the rest: a second objective
    twins = {
        c: np.concatenate([v[:60], v[:60] + 0.01 * rng.normal(size=v[:60].shape)])
        for c, v in channels.items()
    }
    twins["text"] = np.concatenate(
        [channels["text"][:60], channels["text"][60:120]]
    )  # same class, other rows
    rows = DuplicateRows(twins, np.tile(np.arange(60), 2))
    both = choose_fusion_weights(channels, {"category": task}, rows)
    assert both.weights["text"] > 0  # the labels
    assert both.weights["lexical"] + both.weights["image"] > 0  # the twins (text alone cannot find them)
    no_labels = choose_fusion_weights(channels, {"category": np.full(180, None, dtype=object)})
    assert no_labels.weights == {"image": 1 / 3, "text": 1 / 3, "lexical": 1 / 3}
    assert len(simplex_grid(["a", "b", "c"])) == 66


def test_rows_of_one_product_are_not_negatives_of_each_other():
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1: two photos of one product
    scale = torch.tensor(np.log(20.0))
    group = np.array([7, 7, -1])
    same = same_product(group)
    assert same.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    plain = contrastive_loss(features, features, scale)
    aware = contrastive_loss(features, features, scale, same)
    assert aware < 0.01 < np.log(2) * 0.5 < plain  # unmasked, rows 0/1 are an unresolvable negative pair
    assert not same_product(np.array([-1, -1])).any()  # products without a group are never merged


def test_lexical_projection_refuses_too_few_texts():
    with pytest.raises(ValueError, match="at least 8"):
        LexicalProjection.fit(["a b"] * 3)


def _listings(rng: np.random.Generator, products: range, kinds: list[list[str]]) -> list[str]:
    """One listing per product: its kind's words in a new order and its model number, seen in no other."""
    texts = []
    for p in products:
        words = list(rng.permutation(kinds[p % len(kinds)]))[:4]
        texts.append(" ".join([*words[:2], f"model{p:04d}x", *words[2:]]))
    return texts


def test_lexical_random_block_keeps_the_rare_terms_that_tell_near_twins_apart():
    """Two listings of one product differ from a twin of the same kind only by a model number. LSA reads the
    terms of the training texts and keeps what many share; the random projection of the hashed terms keeps
    every term, a model number that no training text has included (a product listed after training)."""
    rng = np.random.default_rng(0)
    kinds = [[f"kind{k}word{w}" for w in range(6)] for k in range(8)]
    train = _listings(rng, range(600), kinds) + _listings(rng, range(600), kinds)  # every number twice
    lexical = LexicalProjection.fit(train)
    assert lexical.dim == LSA_DIM + RANDOM_DIM
    tfidf = lexical.pipeline.named_steps["tfidf"]
    lsa = lexical.pipeline.named_steps["projections"].transformer_list[0][1]

    def recall_at_1(transform, products: range) -> float:
        queries, gallery = _listings(rng, products, kinds), _listings(rng, products, kinds)
        nearest = (transform(queries) @ transform(gallery).T).argmax(axis=1)
        return float((nearest == np.arange(len(queries))).mean())

    def lsa_alone(texts):
        return lsa.transform(tfidf.transform(texts))

    # model numbers seen twice in training: measured 1.0 (LSA alone 0.935; seeds 1 and 2: 1.0, 0.935-0.96)
    assert recall_at_1(lexical.transform, range(200)) > 0.95
    # never seen: measured 0.925 vs 0.105 (seeds 1 and 2: 0.91-0.93 vs 0.10-0.15); over a vocabulary of the
    # training texts the channel could not tell such twins apart either
    unseen = range(5000, 5200)
    channel, lsa_only = recall_at_1(lexical.transform, unseen), recall_at_1(lsa_alone, unseen)
    assert channel > 0.8 and channel - lsa_only > 0.6
    vectors = lexical.transform(_listings(rng, unseen, kinds))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors.dtype == np.float32


def test_lexical_projection_saved_before_loads_and_applies_as_fitted(tmp_path):
    """A projection saved as a bare pipeline (over a vocabulary, before the words it knows were saved beside
    it) still loads; it knows a text whose vector is not zero, as a vocabulary's TF-IDF says."""
    texts = [f"шапка вязаная model{i % 5}" for i in range(12)] + ["платье летнее"] * 4
    fitted = LexicalProjection.fit(texts)
    assert fitted.known(["шапка", "ქუდი", "model3 ქუდი"]).tolist() == [True, False, True]
    fitted.save(tmp_path / "now.joblib")
    reloaded = LexicalProjection.load(tmp_path / "now.joblib")
    np.testing.assert_array_equal(reloaded.transform(texts), fitted.transform(texts))
    assert reloaded.known(["ქუდი", "платье"]).tolist() == [False, True]

    vocabulary = Pipeline([("tfidf", TfidfVectorizer(min_df=2)), ("svd", TruncatedSVD(3, random_state=0))])
    joblib.dump(vocabulary.fit(texts), tmp_path / "before.joblib")
    before = LexicalProjection.load(tmp_path / "before.joblib")
    assert before.words is None and before.dim == 3
    assert before.known(["шапка", "ქუდი"]).tolist() == [True, False]
