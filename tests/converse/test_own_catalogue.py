"""Conversations over a catalogue that is not MovieLens: a small shop whose ``.item`` file has
brand, category (multi-valued), colour and price columns. The attribute types are the columns the
user names (``--attributes``), questions are worded from them, and nothing says "film"."""

from __future__ import annotations

import builtins
import json
import re
import sys

import numpy as np
import pytest

from tests.conftest import cli

BRANDS = ["Nike", "Adidas", "Puma", "Asics"]
CATEGORIES = [("shoes", "running"), ("shoes", "trail"), ("shirts", "running"), ("shirts", "casual"), ("bags", "travel")]
COLOURS = ["red", "blue", "black"]
COLUMNS = ["brand", "category", "colour", "price"]


def write_shop(folder, seed: int = 0) -> dict:
    """120 products and 80 shoppers, each with 6 of their favourite brand's products and 2 others;
    returns {"user": "u1", "target": an Adidas product u1 does not have, "title": its title}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(120):
        brand, (kind, use), colour = BRANDS[i % 4], CATEGORIES[i % 5], COLOURS[i % 3]
        rows.append((f"p{i}", f"{brand} {use} {kind} {i}", brand, f"{kind} {use}", colour, 20 + 7.5 * (i % 13)))
    (folder / "shop.item").write_text(
        "item_id:token\ttitle:token_seq\tbrand:token\tcategory:token_seq\tcolour:token\tprice:float\n"
        + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    lines, have = [], {}
    for u in range(80):
        mine = [k for k in range(120) if rows[k][2] == BRANDS[u % 4]]
        others = [k for k in range(120) if rows[k][2] != BRANDS[u % 4]]
        chosen = [*rng.choice(mine, 6, replace=False), *rng.choice(others, 2, replace=False)]
        have[f"u{u}"] = {rows[k][0] for k in chosen}
        lines += [f"u{u}\t{rows[k][0]}\n" for k in chosen]
    (folder / "shop.inter").write_text("user_id:token\titem_id:token\n" + "".join(lines))
    target = next(r for r in rows if r[2] == "Adidas" and r[0] not in have["u1"] and "running" in r[3])
    return {"user": "u1", "target": target[0], "title": target[1]}


@pytest.fixture
def shop(tmp_path):
    folder = tmp_path / "shop"
    return folder, write_shop(folder)


def test_shop_conversation_in_the_terminal_asks_about_brand_and_category_and_finds_the_target(shop, monkeypatch):
    """penchant converse SHOP --attributes brand,category,colour,price: opening with "brand: Adidas"
    and answering as someone who wants one Adidas running product leads to it; the questions are
    about the named columns, in their words, and nothing says "film"."""
    from penchant.data import load
    from penchant.data.attribute_graph import attribute_graph, item_numbers

    folder, truth = shop
    ds = load(folder)
    graph = attribute_graph(ds, attributes=COLUMNS, numbers=item_numbers(folder, ds))
    target = int(np.flatnonzero(ds.item_ids.astype(str) == truth["target"])[0])
    wanted = set(graph.item_values(target).tolist())
    questions = {graph.question(v): v for v in range(graph.n_values)}
    prompts: list[str] = []

    def answer(prompt: str = "") -> str:
        prompts.append(prompt)
        if prompt.startswith("What are you in the mood for?"):
            return "brand: Adidas"
        if prompt.endswith("[y/n] "):
            question = re.fullmatch(r"Q\d+: (.*) \[y/n\] ", prompt).group(1)
            return "y" if questions[question] in wanted else "n"
        if prompt.endswith("none: "):
            shown = sys.stdout.getvalue().rsplit("how about one of these?", 1)[1]
            titles = {t.strip(): n for n, t in re.findall(r"^\s+(\d+)\. (.*)$", shown, re.MULTILINE)}
            return titles.get(truth["title"], "n")
        raise AssertionError(f"unexpected prompt {prompt!r}")

    monkeypatch.setattr(builtins, "input", answer)
    code, out, err = cli("converse", folder, "--user", truth["user"], "--attributes", ",".join(COLUMNS),
                         "--policy", "maxent")
    assert code == 0, err
    assert prompts[0] == "What are you in the mood for? Name a brand, category, colour or price (Enter to skip): "
    asked = [re.fullmatch(r"Q\d+: (.*) \[y/n\] ", p).group(1) for p in prompts if p.endswith("[y/n] ")]
    assert asked and all(q in questions for q in asked)
    assert any(q.startswith("Do you want brand: ") or q.endswith(" category?") for q in asked), asked
    assert f"Enjoy {truth['title']}!" in out
    assert "film" not in (out + err + "".join(prompts)).lower()


def test_shop_without_attributes_says_to_name_them(shop):
    """No --attributes on data with none of MovieLens's columns: one line saying to pass
    --attributes, listing the usable columns; exit 2 (before: the same refusal, but naming only
    class, genre, release_year, kg:film…)."""
    folder, _ = shop
    code, _, err = cli("converse", "evaluate", folder, "--policy", "maxent", "--episodes", "5")
    assert code == 2
    assert "--attributes" in err and "its item columns: brand, category, colour, price (number)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [("converse",), ("converse", "evaluate")])
def test_unknown_attribute_is_one_line_listing_the_columns(shop, command):
    folder, truth = shop
    extra = ("--policy", "maxent") if len(command) == 2 else ("--user", truth["user"])
    code, _, err = cli(*command, folder, "--attributes", "brand,size", *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no item column 'size'" in err and "its item columns: brand, category, colour, price (number)" in err
    code, _, err = cli(*command, folder, "--attributes", "brand", "--level", "fine", *extra)
    assert code == 2 and "with --attributes leave it out" in err


def test_converse_evaluate_on_the_shop_asks_about_the_named_columns(shop, tmp_path):
    folder, _ = shop
    code, out, err = cli("converse", "evaluate", folder, "--attributes", "brand,category,price", "--policy", "maxent",
                         "--episodes", "40", "--seed", "1", "--json", tmp_path / "out.json")
    assert code == 0, err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["attribute_types"] == ["brand", "category", "price"] and result["noun"] == "item"
    assert result["level"] is None and result["episodes"] == 40 and result["sr@15"] > 0.5
    assert result["questions_by_type"] and set(result["questions_by_type"]) <= {"brand", "category", "price"}
    assert "film" not in (out + err).lower()


def test_wording_comes_from_the_data(shop):
    """Every question on the shop names its column; genre/country/language questions name the
    catalogue's noun only when it has one; MovieLens-like data keeps its film questions."""
    from penchant.data import load
    from penchant.data.attribute_graph import attribute_graph, item_numbers

    folder, _ = shop
    ds = load(folder)
    graph = attribute_graph(ds, attributes=COLUMNS, numbers=item_numbers(folder, ds))
    texts = [graph.question(v) for v in range(graph.n_values)]
    assert "Do you want brand: Nike?" in texts and "Something in the running category?" in texts
    assert "Do you want colour: red?" in texts and "Do you want price: under 40?" in texts
    assert not any("film" in t.lower() for t in texts) and graph.noun == "item"
    brands = [v for v in range(graph.n_values) if graph.label(v).startswith("brand: ")]
    assert graph.choices(brands[:2]) == "Which brand do you want? Adidas, Asics"
    assert graph.find("brand: nike") == graph.find("brand=Nike") == graph.find("Nike") == brands[2]
    assert graph.find("size: 9") is None
    # a column called genre in data that is not films: no "film"; with a noun, the noun
    ds.item_attributes["genre"] = ds.item_attributes["category"]
    default = attribute_graph(ds)  # MovieLens's columns, present here as "genre"
    assert default.noun == "item" and default.question(0) == "Do you want genre: bags?"
    named = attribute_graph(ds, noun="product")
    assert named.question(0) == "Do you want a bags product?"
    only_brand = graph.subset(["brand"])
    assert only_brand.type_names == ("brand",) and only_brand.n_values == 4
    assert [only_brand.question(v) for v in range(4)] == texts[:4]


def test_number_bands_by_hand():
    from penchant.data.attribute_graph import number_bands

    labels, band = number_bands(np.array([20, 27.5, 35, 110, 50, np.nan, 65, 80]))
    assert list(labels) == ["under 30", "30 to under 50", "50 to under 70", "70 and over"]
    assert band.tolist() == [0, 0, 1, 3, 2, -1, 2, 3]  # an edge belongs to the band above it; NaN to none
    labels, band = number_bands(np.array([3.0, 3.0]))
    assert list(labels) == ["3"] and band.tolist() == [0, 0]
    labels, band = number_bands(np.array([1920, 1985, 1990, 1995, 1996, 1997, 1998]))
    assert list(labels) == ["under 1990", "1990 and over"]  # edges that round together merge


def test_movielens_keeps_its_film_wording(shared_data):
    from penchant.data import load
    from penchant.data.attribute_graph import attribute_graph

    graph = attribute_graph(load(shared_data / "ml-100k"), "coarse")
    assert graph.noun == "film" and graph.nameable_types() == ("genre", "decade", "country", "language")
    texts = {graph.question(v) for v in range(graph.n_values)}
    assert {"Do you want an Action film?", "Something from the 1950s?", "A film from the United Kingdom?"} <= texts
    assert graph.choices([0, 1]) == "Which genre would you like? Action, Adventure"
