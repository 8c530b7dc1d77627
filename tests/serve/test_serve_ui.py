"""The /ui page in a real headless Chromium (Debian's, driven by Playwright) against a running
`penchant serve`: counts and versions shown, a user's feedback beside their recommendations by
title, and feedback sent from the form changes the recommendations."""

from __future__ import annotations

import shutil

import pytest

from tests.serve.server import ADMIN, call, free_port, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def test_ui_shows_a_user_and_sends_feedback(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not shutil.which("chromium") and not __import__("os").path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the UI test (apt-get install chromium)")
    port = free_port()
    server = start_server(tmp_path / "data", None, port)
    try:
        call(port, "PUT", "/v1/items", [{"id": f"i{i}", "title": f"Film number {i}"} for i in range(20)])
        events = [{"event_id": f"e{u}-{i}", "user_id": f"u{u}", "item_id": f"i{i}", "type": "click", "timestamp": 1.0 + i}
                  for u in range(12) for i in range(20) if (u + i) % 3 == 0 or i < u % 5]
        call(port, "POST", "/v1/feedback", events)
        version = call(port, "POST", "/v1/models/train", {"model": "pop", "activate": True})["id"]
        while call(port, "GET", f"/v1/models/{version}")["status"] == "training":
            pass
        top = call(port, "GET", "/v1/users/u1/recommendations?k=10")["items"][0]["id"]
        with sync_playwright() as p:
            # a name that is not localhost: plain HTTP from "another host" is not a secure context
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=FLAGS + ["--host-resolver-rules=MAP penchant.test 127.0.0.1"])
            page = browser.new_page()
            page.goto(f"http://penchant.test:{port}/ui")
            assert page.evaluate("window.isSecureContext") is False
            page.fill("#key", ADMIN)
            page.click("#connect")
            expect(page.locator("#status")).to_have_text("connected")
            expect(page.locator("#counts")).to_contain_text(f"{len(events)} events")
            expect(page.locator("#versions tbody tr")).to_have_count(1)
            expect(page.locator("#versions tbody")).to_contain_text("pop")
            page.fill("#user", "u1")
            page.click("#show")
            expect(page.locator("#recs li")).to_have_count(10)
            expect(page.locator("#recs li").first).to_have_text(f"Film number {top[1:]}")
            expect(page.locator("#feedback li").first).to_contain_text("Film number")
            expect(page.locator("#answered")).to_contain_text(f"pop:v{version}")
            page.fill("#item", top)
            page.select_option("#type", "like")
            page.click("#send button")
            expect(page.locator("#sent")).to_have_text("stored (1 new)")
            expect(page.locator("#feedback li").first).to_have_text(f"Film number {top[1:]} (like)")
            assert f"Film number {top[1:]}" not in page.locator("#recs li").all_inner_texts()
            page.screenshot(path=str(tmp_path / "ui.png"))
            browser.close()
    finally:
        server.kill()
