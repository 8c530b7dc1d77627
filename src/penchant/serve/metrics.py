"""Request counters and latency histograms in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any


class AfterEachRequest:
    """ASGI middleware that runs the app and then :meth:`done` for every HTTP request, with the
    status the app answered (500 when it sent none: it raised) and the seconds it took (other scopes
    pass through untouched). Subclasses say what is done with them (metrics, an access log)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.done(scope, status[0], time.perf_counter() - start)

    def done(self, scope: dict, status: int, seconds: float) -> None:
        raise NotImplementedError


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.counters: dict[str, float] = defaultdict(float)

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, path, status)] += 1
            h = self.latency.setdefault((method, path), [0.0] * (len(BUCKETS) + 2))  # buckets, +Inf, sum
            for k, edge in enumerate(BUCKETS):
                if seconds <= edge:
                    h[k] += 1
            h[len(BUCKETS)] += 1
            h[-1] += seconds

    def count(self, name: str, n: float = 1) -> None:
        with self.lock:
            self.counters[name] += n

    def render(self, gauges: dict[str, float]) -> str:
        lines = ["# HELP penchant_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE penchant_http_requests_total counter"]
        with self.lock:
            for (method, path, status), n in sorted(self.requests.items()):
                lines.append(f'penchant_http_requests_total{{method="{method}",path="{path}",status="{status}"}} {n}')
            lines += ["# HELP penchant_http_request_seconds Request latency.",
                      "# TYPE penchant_http_request_seconds histogram"]
            for (method, path), h in sorted(self.latency.items()):
                labels = f'method="{method}",path="{path}"'
                for k, edge in enumerate(BUCKETS):
                    lines.append(f'penchant_http_request_seconds_bucket{{{labels},le="{edge}"}} {h[k]:g}')
                lines.append(f'penchant_http_request_seconds_bucket{{{labels},le="+Inf"}} {h[len(BUCKETS)]:g}')
                lines.append(f"penchant_http_request_seconds_count{{{labels}}} {h[len(BUCKETS)]:g}")
                lines.append(f"penchant_http_request_seconds_sum{{{labels}}} {h[-1]:.6f}")
            for name, value in sorted(self.counters.items()):
                lines += [f"# TYPE {name} counter", f"{name} {value:g}"]
        for name, value in sorted(gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
