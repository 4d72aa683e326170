"""`llm4sbr recommend`: item resolution, and a tiny trained run (embedded SmolLM2 and
MiniLM) explaining sessions end to end — the answers, grounded items, gates and ranks
equal what the training pipeline computed, the backbone-alone list equals the base run's
ranking, mismatched files are errors, and the explain page renders in a headless
browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_llm_workflow import LLM, TITLES, write_dataset

from conftest import REPO
from llm4sbr_core.cli import main
from llm4sbr_core.data.batches import count_items, load_samples
from llm4sbr_core.models import get_backbone
from llm4sbr_core.models.build import build_model
from llm4sbr_core.recommend import (
    ItemCatalog,
    ItemNotFoundError,
    Recommender,
    RunMismatchError,
    explanations_table,
    recommend,
)
from llm4sbr_core.train.intents import run_intents
from llm4sbr_core.train.settings import RunSettings

RUN = "results/tiny/runs/srgnn/{variant}/seed0"
#: the tests on the tiny trained run run snakemake and the embedded models (as
#: tests/test_llm_workflow.py); the item-resolution tests need neither
WORKFLOW = pytest.mark.workflow
INTENTS = f"results/tiny/intents/{LLM}/all-minilm-l6-v2/r5"


# --------------------------------------------------------------------------- catalogue

@pytest.fixture
def catalog():
    return ItemCatalog(pd.DataFrame({
        "item_id": [1, 2, 3, 4, 5], "raw_id": ["m0", "m1", "m2", "m3", "1984"],
        "text": ["Toy Story (1995)", "Heat (1995)", "Heat (1995)", "Casino  (1995)", "1984"]}))


def test_items_resolve_by_id_and_title(catalog):
    assert catalog.resolve(1) == 1 and catalog.resolve("2") == 2
    assert catalog.resolve("Toy Story (1995)") == 1
    assert catalog.resolve("toy story (1995)") == 1  # then ignoring case
    assert catalog.resolve("casino (1995)") == 4  # whitespace folded as prompts show it
    assert catalog.resolve("raw:m3") == 4 and catalog.resolve("title:1984") == 5
    assert catalog.resolve("id:5") == 5
    assert catalog.resolve_all(["Toy Story (1995)", 4]) == [1, 4]


def test_unknown_titles_list_the_closest_and_never_guess(catalog):
    with pytest.raises(ItemNotFoundError, match=r"no item has this title.*closest titles: "
                       r"1 'Toy Story \(1995\)'"):
        catalog.resolve("Toy Story")
    with pytest.raises(ItemNotFoundError, match=r"2 items have this title.*name one by its id"):
        catalog.resolve("heat (1995)")
    with pytest.raises(ItemNotFoundError, match=r"no item with id 9 \(ids are 1..5"):
        catalog.resolve("9")
    with pytest.raises(ItemNotFoundError, match="at least one item"):
        catalog.resolve_all([])


# --------------------------------------------------------------------------- a tiny run

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny catalogue through the whole workflow: answers, intents, and an SR-GNN
    `base` and `llm4sbr` run (2 epochs)."""
    root = tmp_path_factory.mktemp("recommend")
    config = write_dataset(root)
    train = root / "train.yaml"
    train.write_text(yaml.safe_dump({"train": {
        "backbones": ["srgnn"], "variants": ["base", "llm4sbr"], "seeds": [0], "epochs": 2,
        "dim": 16, "llmseqsim": []}}))
    configs = ("config.yaml", str(config), str(train))
    _snakemake(root, configs, *(f"{RUN.format(variant=v)}/metrics.json"
                                for v in ("base", "llm4sbr")))
    return root, configs


def _snakemake(root, configs, *targets):
    """conftest.snakemake with a longer limit: the LLM stage of this fixture takes minutes
    on a busy 2-core machine."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
           "--configfile", *[str(REPO / c) for c in configs], "--", *targets]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-5000:]


def _test_samples(root):
    return pd.read_parquet(root / "results/tiny/data/test.parquet")


def _training_model(root, variant):
    """The run's network as run_training builds it, with the intents of every sample."""
    run = root / RUN.format(variant=variant)
    settings = RunSettings.from_record(json.loads((run / "metrics.json").read_text())["config"])
    data = root / "results/tiny/data"
    splits = [load_samples(data / f"{s}.parquet", settings.max_len)
              for s in ("train", "valid", "test")]
    paths = {v: root / INTENTS / f"{v}.npy" for v in settings.variant.views}
    intents = run_intents(settings.variant, splits, paths, None, settings.seed)
    model = build_model(get_backbone("srgnn"), settings.variant,
                        count_items(data / "items.parquet"), settings.dim,
                        settings.backbone_params, None, intents=intents, tau=settings.tau,
                        shared_projection=settings.shared_projection)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True)["model"])
    return model.eval(), splits[2]


@WORKFLOW
def test_a_test_session_is_explained_as_training_computed_it(trained):
    root, _ = trained
    recommender = Recommender.load(root / RUN.format(variant="llm4sbr"), generate=False)
    test = _test_samples(root)
    n_items = recommender.catalog.n_items
    explanations = recommender.explain([list(s) for s in test["items"]], k=n_items)
    ranks = pd.read_parquet(root / RUN.format(variant="llm4sbr") / "ranks.parquet")
    model, samples = _training_model(root, "llm4sbr")
    with torch.no_grad():
        enc = model.encode(samples.batch(torch.arange(len(samples))))
        gates = {v: model._gate(v, model.session_vector(v, enc), enc).squeeze(-1).numpy()
                 for v in ("short", "long")}
    for row, (e, sample_id, target) in enumerate(zip(explanations, test["sample_id"],
                                                     test["target"], strict=True)):
        assert [v.view for v in e.views] == ["short", "long"]
        for v in e.views:
            answers = pd.read_parquet(root / f"results/tiny/llm/{LLM}/{v.view}.parquet")
            stored = answers.set_index("sample_id").loc[sample_id]
            assert (v.answer, v.flag, v.source) == (stored["answer"], stored["flag"], "store")
            topr = pd.read_parquet(root / INTENTS / f"{v.view}.topr.parquet")
            topr = topr.set_index("sample_id").loc[sample_id]
            assert [g.item_id for g in v.grounded] == list(topr["item_ids"])
            np.testing.assert_allclose([g.score for g in v.grounded], topr["scores"],
                                       atol=1e-6)
            np.testing.assert_allclose(v.gate, gates[v.view][row], rtol=1e-5, atol=1e-6)
        # the target's rank in the explained ranking is the run's test rank
        scores = {r.item_id: r.score for r in e.recommendations}
        rank = sum(s >= scores[int(target)] for s in scores.values())
        assert rank == int(ranks.set_index("sample_id").loc[sample_id, "rank"])


@WORKFLOW
def test_the_backbone_alone_list_is_the_base_runs_ranking(trained):
    root, _ = trained
    e = recommend(root / RUN.format(variant="llm4sbr"), list(_test_samples(root)["items"][0]),
                  k=4)
    model, samples = _training_model(root, "base")
    with torch.no_grad():
        scores = model.scores(samples.batch(torch.tensor([0])))[0, 1:].numpy()
    expected = (np.lexsort((np.arange(len(scores)), -scores))[:4] + 1).tolist()
    c = e.comparison
    assert c.run.endswith("srgnn/base/seed0")
    assert [r.item_id for r in c.recommendations] == expected
    ours = [r.item_id for r in e.recommendations]
    assert [r.item_id for r in c.entered] == [i for i in ours if i not in expected]
    assert [r.item_id for r in c.left] == [i for i in expected if i not in ours]
    assert set(e.timings) >= {"load", "llm", "encode", "localize", "score", "backbone"}


@WORKFLOW
def test_a_new_session_asks_the_llm_once_and_stores_the_answer(trained):
    root, _ = trained
    recommender = Recommender.load(root / RUN.format(variant="llm4sbr"), compare=False)
    session = [TITLES[7], TITLES[0], TITLES[3], TITLES[6]]  # titles, an unseen order
    first = recommender.explain([session], k=3)[0]
    assert {v.source for v in first.views} == {"generated"}
    assert [s.title for s in first.session] == session
    again = recommender.explain([[t.upper() for t in session]], k=3)[0]
    assert {v.source for v in again.views} == {"store"}
    assert [v.answer for v in again.views] == [v.answer for v in first.views]
    assert [r.item_id for r in again.recommendations] == \
        [r.item_id for r in first.recommendations]


@WORKFLOW
def test_cli_prints_text_json_and_batch_parquet(trained, capsys, tmp_path):
    root, _ = trained
    run = str(root / RUN.format(variant="llm4sbr"))
    session = [str(i) for i in _test_samples(root)["items"][0]]
    assert main(["recommend", "--run", run, "--items", *session, "--k", "3"]) == 0
    text = capsys.readouterr().out
    assert "view short: answer" in text and "gate alpha_st (eq. 11)" in text
    assert "backbone alone" in text and "entered (" in text
    assert main(["recommend", "--run", run, "--items", *session, "--k", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["recommendations"]) == 3 and len(doc["views"]) == 2
    assert doc["views"][0]["grounded"][0]["item_id"] >= 1
    assert main(["recommend", "--run", run, "--items", "Toy Story"]) == 2
    assert "closest titles: " in capsys.readouterr().err

    sessions = tmp_path / "sessions.parquet"
    first = [str(i) for i in _test_samples(root)["items"][0]]
    pd.DataFrame({"session_id": [7, 8, 9],  # ids and titles in one column: strings
                  "items": [first, ["1", "2"], [TITLES[2], "5"]]}).to_parquet(sessions)
    out = tmp_path / "explained.parquet"
    assert main(["recommend", "--run", run, "--batch", str(sessions), "--out", str(out),
                 "--k", "4"]) == 0
    table = pd.read_parquet(out)
    casino = ItemCatalog.read(root / "results/tiny/data/items.parquet").resolve(TITLES[2])
    assert table["session_id"].tolist() == [7, 8, 9]
    assert table["items"][2].tolist() == [casino, 5]
    assert all(len(ids) == 4 for ids in table["item_ids"])
    assert {"short_answer", "long_gate", "backbone_item_ids", "entered", "left"} <= \
        set(table.columns)


@WORKFLOW
def test_batch_table_without_comparison(trained):
    root, _ = trained
    recommender = Recommender.load(root / RUN.format(variant="base"))
    e = recommender.explain([[1, 2]], k=2)
    assert e[0].views == [] and e[0].comparison is None
    assert list(explanations_table(e).columns) == ["session_id", "items", "item_ids", "scores"]


def _copy_of_results(root, tmp_path):
    shutil.copytree(root / "results", tmp_path / "results")
    return tmp_path / RUN.format(variant="llm4sbr")


@WORKFLOW
def test_another_item_table_is_an_error(trained, tmp_path):
    root, _ = trained
    run = _copy_of_results(root, tmp_path)
    items = tmp_path / "results/tiny/data/items.parquet"
    frame = pd.read_parquet(items)
    frame.loc[0, "text"] = "Another movie (2001)"
    frame.to_parquet(items)
    with pytest.raises(RunMismatchError, match="not the ones this run was trained on"):
        Recommender.load(run, cache_dir=root / "cache", compare=False)


@WORKFLOW
def test_another_encoder_is_an_error(trained, tmp_path):
    root, _ = trained
    run = _copy_of_results(root, tmp_path)
    vectors = tmp_path / "results/tiny/text/all-minilm-l6-v2/items.npy"
    np.save(vectors, np.load(vectors)[::-1].copy())  # other vectors, same shape
    with pytest.raises(RunMismatchError, match="does not give the stored item vectors"):
        Recommender.load(run, cache_dir=root / "cache", compare=False)


@WORKFLOW
def test_another_prompt_template_is_an_error(trained):
    root, _ = trained
    with pytest.raises(Exception, match="another 'short' prompt"):
        Recommender.load(root / RUN.format(variant="llm4sbr"), compare=False,
                         config={"prompts": {"max_name_chars": 8}})


@WORKFLOW
def test_explain_page_renders_in_a_headless_browser(trained):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless browser: apt-get install -y chromium")
    root, configs = trained
    _snakemake(root, configs, "results/tiny/figures/explain.html")
    page = root / "results/tiny/figures/explain.html"
    dump = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    assert "Explained test sessions (tiny)" in dom
    assert dom.count('<section class="explained">') == len(_test_samples(root).head(5))
    assert "alpha_st (eq. 11)" in dom and "the backbone alone (base)" in dom
