"""A penchant service (the app in process, SQLite) serving a slate-world population with ε-greedy lists;
its store dump feeds `penchant when-to-show` (docs/ranking.md).

    .venv/bin/python benchmarks/when_to_show_dump.py 5000 /tmp/cdhf     # lists to serve, a working folder
    penchant when-to-show /tmp/cdhf/dump.jsonl --cost 0.25 --plot wts_dump.png
"""
import sys
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from penchant.serve.app import create_app
from penchant.serve.config import load_settings
from penchant.simulate.slate_world import SlateWorld

ADMIN = "pk_cdhf1_0123456789abcdefghijklmnop"
world = SlateWorld.synthetic(100, 80, slate_size=5, seed=1)
rng = np.random.default_rng(1)
folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/cdhf")
settings = load_settings(str(folder / "data"), env={}, overrides={"rate_limit_per_minute": "1000000"})
t0 = time.time()
with TestClient(create_app(settings, admin_key=ADMIN)) as c:
    c.headers["Authorization"] = f"Bearer {ADMIN}"
    c.put("/v1/items", json=[{"id": f"i{i}"} for i in range(80)])
    events = []
    for u in range(100):  # a history: 10 clicks per user drawn by taste
        p = np.exp(world.utility[u]); p /= p.sum()
        for k, i in enumerate(rng.choice(80, 10, replace=False, p=p)):
            events.append({"event_id": f"h{u}-{k}", "user_id": f"u{u}", "item_id": f"i{i}", "type": "click", "timestamp": 1000.0 + k})
    c.post("/v1/feedback", json=events)
    v = c.post("/v1/models/train", json={"model": "als", "params": {"factors": 8}, "activate": True}).json()["id"]
    c.app.state.service.host.wait(v)
    n_lists = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for n in range(n_lists):
        u = int(rng.integers(100))
        ans = c.get(f"/v1/users/u{u}/recommendations", params={"k": 5, "epsilon": 0.2}).json()
        if "items" not in ans:
            raise SystemExit(f"list {n}: {ans}")
        items = [int(x["id"][1:]) for x in ans["items"]]
        clicks = world.click_probabilities(np.array([u]), np.array([items]))[0] > rng.random(len(items))
        fb = [{"event_id": f"c{n}-{j}", "user_id": f"u{u}", "item_id": f"i{items[j]}", "type": "click"} for j in np.flatnonzero(clicks)]
        if fb:
            c.post("/v1/feedback", json=fb)
    (folder / "dump.jsonl").write_text(c.get("/v1/admin/dump").text)
print(f"served {n_lists} lists in {time.time() - t0:.1f}s")
