"""The framework's ceiling for `benchmarks/bench_serve.py`: a minimal FastAPI app on Uvicorn that
answers GET /v1/users/{user}/recommendations with a precomputed top 10 (the same JSON shape as
penchant's), no key check, no store, no model. Run by the benchmark with the same worker count."""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

_rng = np.random.default_rng(0)
TOP = {str(u): [{"id": str(i), "score": float(s)} for i, s in zip(_rng.choice(1682, 10, replace=False) + 1,
                                                                   np.sort(_rng.random(10))[::-1])]
       for u in range(1, 944)}

app = FastAPI()


@app.get("/v1/users/{user_id}/recommendations")
async def recommendations(user_id: str, k: int = 10) -> JSONResponse:
    return JSONResponse({"user": user_id, "model": "precomputed", "items": TOP.get(user_id, [])[:k]})
