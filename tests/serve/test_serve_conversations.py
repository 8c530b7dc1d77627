"""Conversations over HTTP on a store whose items are not films: a shop's products with a brand,
a colour, a price (a number) and several categories, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.serve.server import clustered_events

BRANDS = ["Nike", "Adidas"]
COLOURS = ["red", "blue", "black"]
KINDS = [["shoes", "running"], ["shoes", "trail"], ["shirts", "running"], ["shirts", "casual"], ["bags"]]


def _products() -> list[dict]:
    """40 products (the ids the clustered events use)."""
    return [{"id": f"i{i}", "title": f"Product {i}", "categories": KINDS[i % 5],
             "attributes": {"brand": BRANDS[i % 2], "colour": COLOURS[i % 3], "price": 20 + 5 * (i % 9)}}
            for i in range(40)]


def _deploy(client) -> None:
    client.put("/v1/items", json=_products())
    client.post("/v1/feedback", json=clustered_events())
    host = client.app.state.service.host
    assert host.wait(client.post("/v1/models/train", json={"model": "pop", "activate": True}).json()["id"])["status"] == "ready"


def test_conversation_over_a_shop_asks_by_attribute_name_and_finds_the_product(client):
    """Opening with brand=Adidas and answering as someone who wants one product reaches it; every
    question names its attribute (``Do you want colour: red?``), numbers are asked about in bands,
    and nothing says "film"; ``attributes`` limits what is asked and is kept between requests."""
    _deploy(client)
    talks, host = client.app.state.service.talks, client.app.state.service.host
    full = talks.graph(host.deployed)
    assert set(full.type_names) == {"brand", "category", "colour", "price"}
    assert {"price: under 30", "price: 50 and over"} <= {full.label(v) for v in range(full.n_values)}
    wanted = "i37"  # Adidas, shirts + running, blue, 20 + 5·1
    row = host.deployed.item_index[wanted]

    def has(label: str) -> bool:
        return bool(full.items[row, full.find(label)])

    r = client.post("/v1/conversations", json={"policy": "maxent", "opening": "brand=Adidas",
                                               "attributes": ["brand", "colour", "price"]})
    assert r.status_code == 201, r.text
    talk = r.json()
    assert talk["accepted"] == ["brand: Adidas"] and talk["attributes"] == ["brand", "colour", "price"]
    asked = []
    for _ in range(15):
        move = talk["next"]
        if move is None:
            break
        if move["kind"] == "question":
            label = move["values"][0]["label"]
            kind, value = label.split(": ", 1)
            assert kind in ("colour", "price") and move["text"] == f"Do you want {kind}: {value}?"
            asked.append(move["text"])
            body = {"yes": has(label)}
        else:
            ids = [x["id"] for x in move["items"]]
            body = {"item": wanted if wanted in ids else None}
        talk = client.post(f"/v1/conversations/{talk['id']}/answer", json=body).json()
    assert talk["found"] == wanted and talk["done"] and asked
    assert talk["attributes"] == ["brand", "colour", "price"]  # kept between requests
    assert "film" not in " ".join(asked).lower()


def test_conversation_attribute_choice_and_wording_errors(client):
    _deploy(client)
    r = client.post("/v1/conversations", json={"attributes": ["brand", "size"]})
    assert r.status_code == 422 and "attributes: no attribute 'size'" in r.text
    assert "brand, category, colour, price" in r.text  # what there is
    assert client.post("/v1/conversations", json={"attributes": []}).status_code == 422
    assert client.post("/v1/conversations", json={"noun": ""}).status_code == 422
    # the catalogue's noun words genre/country/language questions; the default names no noun
    client.put("/v1/items", json=[{"id": f"i{i}", "title": f"Book {i}", "attributes": {"genre": ["Fantasy", "Crime"][i % 2]}}
                                  for i in range(40)])
    plain = client.post("/v1/conversations", json={"attributes": ["genre"]}).json()["next"]
    assert plain["kind"] == "question" and plain["text"].startswith("Do you want genre: ")
    named = client.post("/v1/conversations", json={"attributes": ["genre"], "noun": "book"}).json()
    assert named["noun"] == "book" and named["next"]["text"] in ("Do you want a Fantasy book?", "Do you want a Crime book?")
