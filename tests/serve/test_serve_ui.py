"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a running
`penchant serve` holding MovieLens-100K, opened under a host name that is not localhost (plain HTTP
from another machine): every view is visited, what it shows is checked against the store and the
model, and the screenshots are checked for the charts' bars."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.serve.server import ADMIN, ROOT, call, free_port, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
# a 2×2 PNG, as an item's image attribute
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAA"
         "AABJRU5ErkJggg==")


def _share_of_colour(png: str, rgb: tuple[int, int, int]) -> float:
    """Share of a screenshot's pixels within a few levels of ``rgb`` (a chart's bar colour)."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return float((np.abs(pixels - np.array(rgb)).max(axis=2) <= 8).mean())


def _give_image(port: int, item_id: str) -> None:
    """Store ``PIXEL`` as the item's ``image`` attribute, keeping the rest of its record."""
    item = call(port, "GET", f"/v1/items/{item_id}")
    call(port, "PUT", "/v1/items", [{**{k: item[k] for k in ("id", "title", "categories")},
                                     "attributes": {**item["attributes"], "image": PIXEL}}])


@pytest.mark.slow
def test_the_dashboard_on_movielens(tmp_path, ml100k_dir, ml100k):
    from playwright.sync_api import expect, sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the dashboard test (apt-get install chromium)")
    data = tmp_path / "data"
    loaded = subprocess.run([sys.executable, "-m", "penchant", "store", "restore", "--dataset", str(ml100k_dir),
                             "--data-dir", str(data)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert loaded.returncode == 0, loaded.stderr
    port = free_port()
    server = start_server(data, None, port)
    shots = {}
    try:
        _give_image(port, "50")
        days = np.unique(np.floor(ml100k.timestamps / 86400))
        weeks = np.unique(np.floor(ml100k.timestamps[ml100k.items == ml100k.item_index(["50"])[0]] / (7 * 86400)))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=FLAGS + ["--host-resolver-rules=MAP penchant.test 127.0.0.1"])
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(f"http://penchant.test:{port}/ui")
            assert page.evaluate("window.isSecureContext") is False
            page.fill("#key", ADMIN)
            page.click("#connect")

            # overview: counts, one bar per day with events summing to every event, the feedback types
            expect(page.locator("#status")).to_have_text("connected")
            expect(page.locator("#n-events")).to_contain_text("100,000")
            expect(page.locator("#n-users")).to_contain_text("943")
            expect(page.locator("#n-items")).to_contain_text("1,682")
            expect(page.locator("#events-chart rect")).to_have_count(len(days))
            values = page.locator("#events-chart rect").evaluate_all("rs => rs.map(r => +r.dataset.value)")
            assert sum(values) == 100_000
            expect(page.locator("#types tbody")).to_contain_text("dislike")
            expect(page.locator("#types tbody")).to_contain_text("negative")
            expect(page.locator("#settings tbody")).to_contain_text("ann_min_items")
            shots["overview"] = str(tmp_path / "overview.png")
            page.screenshot(path=shots["overview"], full_page=True)

            # models: train from the page; the row shows training, then ready and active without a reload
            page.click("a[href='#/models']")
            page.fill("#train-model", "als")
            page.fill("#train-params", '{"factors": 32}')
            page.click("#train button[type=submit]")
            expect(page.locator("#versions tbody tr")).to_have_count(1)
            expect(page.locator("#versions tbody tr .bar")).to_have_count(1)  # a progress bar while it trains
            expect(page.locator("#versions tbody tr").first).to_contain_text("active", timeout=120_000)
            row = page.locator("#versions tbody tr").first
            expect(row).to_contain_text("ready")
            expect(row).to_contain_text("ndcg@10")
            expect(row).to_contain_text('"factors":32')
            version = call(port, "GET", "/v1/models")[0]
            assert version["status"] == "ready" and version["params"] == {"factors": 32}
            shots["models"] = str(tmp_path / "models.png")
            page.screenshot(path=shots["models"], full_page=True)

            # a user: history by title beside the model's recommendations with scores, neighbours
            top = call(port, "GET", "/v1/users/1/recommendations?k=10")["items"][0]["id"]
            _give_image(port, top)  # so user 1's list has an item with an image
            page.goto(f"http://penchant.test:{port}/ui#/users/1")
            expect(page.locator("#recs tbody tr")).to_have_count(10)
            expect(page.locator("#answered")).to_contain_text(f"als:v{version['id']}")
            expect(page.locator("#history tbody tr")).to_have_count(20)
            expect(page.locator("#user-info")).to_contain_text("272 events")
            expect(page.locator("#user-info")).to_contain_text("occupation technician")
            expected = call(port, "GET", "/v1/users/1/recommendations?k=10")["items"]
            titles = {r["id"]: r["title"] for r in call(port, "GET", "/v1/items?" + "&".join(f"ids={x['id']}" for x in expected))}
            shown = page.locator("#recs tbody tr td:nth-child(3)").all_inner_texts()
            assert shown == [titles[x["id"]] for x in expected]
            scores = [float(s) for s in page.locator("#recs tbody tr td:nth-child(4)").all_inner_texts()]
            assert scores == pytest.approx([x["score"] for x in expected], abs=1e-4) and scores == sorted(scores, reverse=True)
            expect(page.locator("#neighbours li")).to_have_count(5)
            expect(page.locator("#recs img.thumb")).to_have_count(len({top, "50"} & set(titles)))
            page.fill("#item", expected[0]["id"])
            page.select_option("#type", "like")
            page.click("#send button")
            expect(page.locator("#sent")).to_have_text("stored (1 new)")
            expect(page.locator("#history tbody tr").first).to_contain_text(titles[expected[0]["id"]])
            expect(page.locator("#history tbody tr").first).to_contain_text("like")
            shots["user"] = str(tmp_path / "user.png")
            page.screenshot(path=shots["user"], full_page=True)

            # an item: its record and image, its events per week, its nearest items
            page.goto(f"http://penchant.test:{port}/ui#/items/50")
            expect(page.locator("#item-title")).to_have_text("Star Wars")
            expect(page.locator("#item-image img")).to_have_count(1)
            expect(page.locator("#item-record")).to_contain_text("Sci-Fi")
            expect(page.locator("#item-total")).to_contain_text("583")
            expect(page.locator("#item-chart rect")).to_have_count(len(weeks))
            expect(page.locator("#similar li")).to_have_count(10)
            shots["item"] = str(tmp_path / "item.png")
            page.screenshot(path=shots["item"], full_page=True)

            # keys: create one (shown once), revoke it; the revoked key is refused
            page.click("a[href='#/keys']")
            expect(page.locator("#key-list tbody tr")).to_have_count(1)
            page.fill("#key-name", "analyst")
            page.select_option("#key-scope", "read")
            page.click("#new-key button")
            expect(page.locator("#new-key-value")).to_contain_text("pk_")
            new_key = page.locator("#new-key-value").inner_text()
            expect(page.locator("#key-list tbody tr")).to_have_count(2)
            assert page.evaluate(f"fetch('/v1/stats/events', {{headers: {{Authorization: 'Bearer {new_key}'}}}}).then(r => r.status)") == 200
            page.click(f"#key-list button[data-key='{new_key.split('_')[1]}']")
            expect(page.locator("#key-list button")).to_have_count(1)  # the admin key's; the analyst's is revoked
            expect(page.locator("#key-list tbody tr").nth(1)).to_contain_text("analyst")
            assert page.evaluate(f"fetch('/v1/stats/events', {{headers: {{Authorization: 'Bearer {new_key}'}}}}).then(r => r.status)") == 401
            shots["keys"] = str(tmp_path / "keys.png")
            page.screenshot(path=shots["keys"], full_page=True)
            browser.close()
    finally:
        server.kill()
    # the charts are drawn: the bar colours cover part of each screenshot that has a chart
    assert _share_of_colour(shots["overview"], (0x25, 0x63, 0xEB)) > 0.01
    assert _share_of_colour(shots["overview"], (0x05, 0x96, 0x69)) > 0.005
    assert _share_of_colour(shots["item"], (0xD9, 0x77, 0x06)) > 0.002
