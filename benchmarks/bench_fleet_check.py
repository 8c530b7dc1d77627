"""What the fleet check costs an answer (issue 41): on a shared store (PostgreSQL) every answer
reads the fleet's change counter and the user's event counter (one SELECT,
:meth:`penchant.serve.store.Store.fleet_read`) and every key check the revocation counter (the hot
path's key check shares the answer's read: one round trip per request), so that
no replica answers from an old version, a revoked key or a cached answer older than the user's
last event. Measured on one replica over a real PostgreSQL (the test suite's throwaway server, or
``PENCHANT_TEST_DATABASE_URL``):

- the SELECT alone;
- a cached ``ModelHost.recommend`` with the check (``Store.shared`` True: what replicas run) and
  without it (``shared`` forced False: one process's behaviour, not safe across replicas), in
  alternating blocks so a busy machine hits both alike;
- the whole request (``GET /v1/users/{id}/recommendations`` through the ASGI app: key check,
  hot path, answer), with and without.

Run: ``python benchmarks/bench_fleet_check.py [--calls 2000] [--rounds 5]``. Prints medians in µs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _per_call(fn, calls: int) -> float:
    """Mean µs of ``fn()`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from tests.postgres import PostgresServer
    from tests.serve.server import ADMIN, clustered_events

    server = PostgresServer()
    try:
        url = server.database()
        app = create_app(load_settings(Path(tempfile.mkdtemp()) / "data", database_url=url, env={}), admin_key=ADMIN)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN}"
            client.post("/v1/feedback", json=clustered_events())
            v = client.post("/v1/models/train", json={"model": "itemknn", "activate": True}).json()["id"]
            svc = app.state.service
            assert svc.host.wait(v, 120)["status"] == "ready"
            app.state.listener.stop()  # nothing else talks to the database while timing
            store, host = svc.store, svc.host
            rows: dict[str, list[float]] = {k: [] for k in ("select", "recommend checked", "recommend unchecked",
                                                            "request checked", "request unchecked")}
            host.recommend("u0", 10)
            for _ in range(args.rounds):
                rows["select"].append(_per_call(lambda: store.fleet_read("u0"), args.calls))
                for shared, label in ((True, "checked"), (False, "unchecked")):
                    store.shared = shared
                    host.recommend("u0", 10)  # cached under this mode's stamp
                    rows[f"recommend {label}"].append(_per_call(lambda: host.recommend("u0", 10), args.calls))
                    rows[f"request {label}"].append(_per_call(
                        lambda: client.get("/v1/users/u0/recommendations?k=10"), args.calls // 4))
                store.shared = True
            print(f"PostgreSQL, one replica, {args.rounds} rounds of {args.calls} calls (requests: {args.calls // 4}); "
                  f"median of the rounds' means, µs per call")
            for name, values in rows.items():
                print(f"  {name:22s} {statistics.median(values):8.1f}")
            for what in ("recommend", "request"):
                extra = statistics.median(rows[f"{what} checked"]) - statistics.median(rows[f"{what} unchecked"])
                print(f"  the check adds {extra:.1f} µs to a cached {what}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
