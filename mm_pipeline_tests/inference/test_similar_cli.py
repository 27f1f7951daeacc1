"""`mm-pipeline similar` reads the similarity index and the embeddings files and prints neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_pipeline.cli import main as cli_main
from mm_pipeline.defs.tables import markdown_table
from mm_pipeline.evaluation.catalogue_index import example_neighbours, write_index
from mm_pipeline.inference.encoders import BASE_FUSION_WEIGHTS, fuse
from mm_pipeline.layout import Layout


def test_similar_prints_the_nearest_products(tmp_path, capsys):
    layout = Layout(tmp_path)
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    image[1], text[1] = image[0] + 0.01, text[0] + 0.01  # nm 101 is a near-copy of nm 100
    fused = fuse({"image": image, "text": text}, BASE_FUSION_WEIGHTS)
    nm = np.arange(100, 120)
    columns = {
        "nm": pa.array(nm),
        "fused": pa.FixedSizeListArray.from_arrays(pa.array(fused.reshape(-1)), 16),
    }
    layout.embeddings("b0").parent.mkdir(parents=True)
    pq.write_table(pa.table(columns), layout.embeddings("b0"))
    write_index(layout, pd.DataFrame({"nm": nm, "title": [f"товар {i}" for i in nm], "batch": "b0"}), fused)

    assert cli_main(["similar", "--nm", "100", "--k", "3", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "товар 100" in lines[0] and len(lines) == 4
    assert lines[1].split()[0] == "101" and float(lines[1].split()[1]) > 0.99
    assert cli_main(["similar", "--nm", "999", "--data-dir", str(tmp_path)]) == 2
    assert "not in the index" in capsys.readouterr().err
    # a batch the index serves whose embeddings file is gone: named, with what to rematerialize
    layout.embeddings("b0").unlink()
    assert cli_main(["similar", "--nm", "100", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the index serves batches whose embeddings are missing: b0 (")
    assert "rematerialize embeddings for them, then similarity_index" in err and err.count("\n") == 1


def test_similar_without_an_index_says_where_it_looked_and_how_to_point_elsewhere(tmp_path, capsys):
    assert cli_main(["similar", "--nm", "1", "--data-dir", str(tmp_path / "elsewhere")]) == 2
    err = capsys.readouterr().err
    assert (
        str(tmp_path / "elsewhere") in err and "--data-dir (or MM_DATA_DIR)" in err and err.count("\n") == 1
    )


def test_similar_takes_a_product_or_a_text_query_not_both(capsys):
    for args, reason in [
        ([], "one of the arguments --nm --text --image is required"),
        (["--nm", "1", "--text", "крем"], "argument --text: not allowed with argument --nm"),
    ]:
        with pytest.raises(SystemExit) as exited:
            cli_main(["similar", *args])
        assert exited.value.code == 2 and reason in capsys.readouterr().err


def test_example_neighbours_show_a_few_products_spread_over_the_catalogue(tmp_path):
    rng = np.random.default_rng(1)
    vectors = fuse({"image": rng.normal(size=(30, 8)), "text": rng.normal(size=(30, 8))}, BASE_FUSION_WEIGHTS)
    vectors[15] = vectors[14]  # nm 214 has a twin
    lookup = pd.DataFrame({"nm": np.arange(200, 230), "title": [f"товар {i} | сорт" for i in range(30)]})
    built = write_index(Layout(tmp_path), lookup.assign(batch="b0"), vectors)

    records = example_neighbours(built.index, lookup, vectors, queries=3, k=4)
    assert [r["query"].split()[0] for r in records] == ["200"] * 4 + ["214"] * 4 + ["229"] * 4
    assert [r["rank"] for r in records[:4]] == [1, 2, 3, 4]
    twin = records[4]
    assert (twin["nm"], twin["title"]) == (215, "товар 15 | сорт") and twin["cosine"] > 0.999
    exact = vectors[[0]] @ vectors.T
    exact[0, 0] = -np.inf  # the query itself is never its own neighbour
    assert [r["nm"] for r in records[:4]] == list(200 + np.argsort(-exact[0])[:4])
    assert all(r["nm"] != int(r["query"].split()[0]) for r in records)
    assert example_neighbours(built.index, lookup.iloc[0:0], vectors[:0]) == []
    assert "товар 15 \\| сорт" in markdown_table(records)  # a title's "|" stays in its cell
