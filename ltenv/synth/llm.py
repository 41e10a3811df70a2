"""The synthesis pipeline's LLM client: an OpenAI-compatible endpoint behind a disk cache, with structured
(JSON-schema) outputs and per-stage token accounting.

* **Transport** is :class:`ltenv.agents.policies.OpenAIPolicy` (its retries with jittered exponential
  backoff on connection errors, timeouts, 408/409/429 and 5xx, ``Retry-After``, no retry on other 4xx,
  context-overflow detection, and its ``max_concurrency`` semaphore). Endpoint failures surface as
  :class:`LLMRequestError` naming the stage (``context_overflow=True`` for a context-length error).
* **Cache**: one JSON file per request under ``cache_dir/<key[:2]>/<key>.json``; ``key`` is the sha256 of
  a canonical JSON of (model, messages, sampling params, schema, ``key_extra``). The stage and the
  base URL are not part of the key. Files are written atomically (temp file + ``os.replace``). A rerun
  with the same requests makes no HTTP call, so an interrupted run resumes without paying twice and a
  finished run replays exactly. An unreadable/corrupt file is ignored (logged) and overwritten. Identical
  requests in flight at the same time are sent once (the others wait for the first and hit the cache).
* **Structured output**: with ``schema``, the reply is parsed tolerantly (whole text, then fenced
  ```` ```json ```` blocks, then the first JSON object/array amid prose, via the terminus scaffold's
  extractor for objects) and validated with ``jsonschema``. A failure raises :class:`LLMOutputError`
  naming the stage and the first violation's path (``$.tasks[2].name``). Such a reply *is* written to
  the cache, marked ``"valid": false`` with its error, for inspection; a marked entry is never served as
  a hit, so the next identical call asks the server again (and overwrites it). Callers that want another
  sample after an invalid output should change the request (repair messages or ``key_extra``).
  ``use_response_format=True`` also sends ``response_format={"type": "json_schema", ...}``; putting
  the schema in the prompt is the caller's job.
* **Accounting**: :meth:`SynthLLM.usage_by_stage` gives, per stage, ``prompt_tokens`` and
  ``completion_tokens`` of the HTTP calls actually made (what was paid for), ``requests`` (HTTP
  completions received) and ``cached`` (calls answered from the cache). Thread-safe.

Example:
    >>> llm = SynthLLM("Qwen/Qwen3-32B", base_url="http://127.0.0.1:8000/v1", cache_dir=Path("cache"))  # doctest: +SKIP
    >>> r = llm.complete("propose", [{"role": "user", "content": "..."}], schema=TASKS_SCHEMA)  # doctest: +SKIP
    >>> r.data["tasks"], r.cached, llm.usage_by_stage()["propose"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltenv.agents.policies import ContextOverflow, OpenAIPolicy, PolicyError, RuntimeState
from ltenv.agents.scaffolds import ParseError, _find_json_object
from ltenv.errors import LtenvError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Part of every cache key: bump it when the key's contents or the entry format change."""


class LLMError(LtenvError):
    """Base class of the synthesis LLM client's errors."""


class LLMRequestError(LLMError):
    """The endpoint gave no usable reply for ``stage`` (down after retries, a 4xx, context overflow)."""

    def __init__(self, stage: str, message: str, *, context_overflow: bool = False):
        self.stage = stage
        self.reason = message
        self.context_overflow = context_overflow
        super().__init__(f"stage {stage!r}: {message}")


class LLMOutputError(LLMError):
    """The reply of ``stage`` is not the JSON the schema asks for. ``reason`` says why (for a schema
    violation it starts with the path of the first violation); ``text`` is the raw reply."""

    def __init__(self, stage: str, reason: str, text: str):
        self.stage = stage
        self.reason = reason
        self.text = text
        super().__init__(f"stage {stage!r}: invalid model output: {reason}")


@dataclass
class LLMResponse:
    """One reply. ``data``: the parsed, schema-valid JSON when a schema was given, else ``None``.
    ``usage``: the reply's token counts (also for a cached reply: what it cost when it was made).
    ``cached``: served from the disk cache without an HTTP call. ``key``: its cache key."""

    text: str
    data: Any = None
    usage: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    key: str = ""
    finish_reason: str | None = None


# ------------------------------------------------------------------------------------------ JSON parsing
_FENCED = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_MAX_ARRAY_STARTS = 256


def extract_json(text: str, *, expect: str | None = None) -> Any:
    """The JSON value in a model reply: the whole text, else a fenced block, else the first JSON object
    (or, with ``expect="array"``, array) surrounded by prose. Raises ``ValueError`` with a short reason."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the reply is empty; JSON was expected")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCED.findall(text):
        try:
            return json.loads(block)
        except ValueError:
            continue
    if expect == "array":
        decoder = json.JSONDecoder()
        pos, tries = text.find("["), 0
        while pos != -1 and tries < _MAX_ARRAY_STARTS:
            tries += 1
            try:
                value, _ = decoder.raw_decode(text, pos)
            except ValueError:
                pos = text.find("[", pos + 1)
                continue
            if isinstance(value, list):
                return value
            pos = text.find("[", pos + 1)
        raise ValueError("no JSON array found in the reply")
    try:
        obj, _warnings = _find_json_object(text)
    except ParseError as e:
        raise ValueError(e.message) from None
    return obj


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if re.fullmatch(r"\w+", str(p)) else f"[{p!r}]")
    return out


def validate_json(data: Any, schema: dict[str, Any]) -> str | None:
    """``None`` if ``data`` satisfies ``schema``, else ``"<path>: <message>"`` of the first violation
    (errors ordered by path: array indexes numerically, object keys by name). An invalid schema raises
    ``jsonschema.SchemaError``."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = list(cls(schema).iter_errors(data))
    if not errors:
        return None
    first = min(
        errors,
        key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in e.absolute_path],
    )
    return f"{_json_path(first.absolute_path)}: {first.message}"


def _schema_type(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    return t if isinstance(t, str) else None


# --------------------------------------------------------------------------------------------- transport
@dataclass
class _Call:
    """Per-request extras for :class:`_Endpoint` (stands in for the policy's EpisodeContext, of which
    ``OpenAIPolicy._request`` reads only ``seed``)."""

    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Endpoint(OpenAIPolicy):
    """OpenAIPolicy plus per-request body fields (``response_format``)."""

    def _request(self, messages: list[dict[str, Any]], ctx: Any) -> dict[str, Any]:
        req = super()._request(messages, ctx)
        req.update(ctx.extra)
        return req


# ---------------------------------------------------------------------------------------------- client
_STAGE_COUNTERS = ("prompt_tokens", "completion_tokens", "requests", "cached")


class SynthLLM(RuntimeState):
    """The synthesis pipeline's LLM client (see the module docstring). Thread-safe.

    ``cache_dir=None`` disables the cache. ``temperature``/``top_p``/``max_tokens``/``seed`` are sent
    with every request and are part of the cache key, as are ``extra_body`` and ``use_response_format``.
    ``backoff``/``max_backoff``: retry delays (seconds), as in :class:`OpenAIPolicy`.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        cache_dir: Path | str | None,
        max_concurrency: int = 8,
        max_retries: int = 5,
        temperature: float | None = 0.7,
        top_p: float | None = None,
        max_tokens: int | None = 8192,
        seed: int | None = None,
        timeout: float = 600.0,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        use_response_format: bool = False,
        extra_body: dict[str, Any] | None = None,
    ):
        self.model = model
        self.base_url = base_url
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.use_response_format = use_response_format
        self.extra_body = dict(extra_body or {})
        self._endpoint = _Endpoint(
            model,
            base_url=base_url,
            api_key=api_key,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            timeout=timeout,
            extra_body=self.extra_body,
            send_seed=seed is not None,
        )
        self._init_runtime()

    _runtime_attrs = ("_lock", "_usage", "_inflight")

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, dict[str, int]] = {}
        self._inflight: dict[str, list[Any]] = {}  # key -> [lock, number of callers holding/waiting]

    @property
    def max_concurrency(self) -> int:
        return self._endpoint.max_concurrency

    def close(self) -> None:
        self._endpoint.close()

    def __enter__(self) -> SynthLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SynthLLM(model={self.model!r}, base_url={self.base_url!r}, cache_dir={self.cache_dir!r})"

    # ---------------------------------------------------------------------------------------- keys
    def _params(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "extra_body": self.extra_body,
            "response_format": self.use_response_format,
        }

    def cache_key(
        self, messages: list[dict[str, Any]], *, schema: dict[str, Any] | None = None, key_extra: str = ""
    ) -> str:
        """The cache key of a request: sha256 of a canonical JSON of everything that shapes the reply."""
        payload = {
            "v": CACHE_VERSION,
            "model": self.model,
            "messages": messages,
            "params": self._params(),
            "schema": schema,
            "key_extra": key_extra,
        }
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir is not None else None

    # ---------------------------------------------------------------------------------------- cache
    def _read_cache(self, key: str) -> dict[str, Any] | None:
        path = self.cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if (
                not isinstance(entry, dict)
                or entry.get("key") != key
                or not isinstance(entry.get("text"), str)
                or not isinstance(entry.get("usage", {}), dict)
            ):
                raise ValueError("not a cache entry of this key")
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable LLM cache file %s (%s); it will be overwritten", path, e)
            return None
        return entry

    def _write_cache(self, key: str, entry: dict[str, Any]) -> None:
        path = self.cache_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(entry, f, ensure_ascii=False, indent=1)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            log.warning("could not write LLM cache file %s: %s", path, e)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            slot = self._inflight.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
            return slot[0]

    def _release_key(self, key: str) -> None:
        with self._lock:
            slot = self._inflight[key]
            slot[1] -= 1
            if slot[1] == 0:
                del self._inflight[key]

    # -------------------------------------------------------------------------------------- accounting
    def _count(self, stage: str, **inc: int) -> None:
        with self._lock:
            counters = self._usage.setdefault(stage, dict.fromkeys(_STAGE_COUNTERS, 0))
            for k, v in inc.items():
                counters[k] += v

    def usage_by_stage(self) -> dict[str, dict[str, int]]:
        """Per stage: ``prompt_tokens``/``completion_tokens`` of HTTP calls made, ``requests`` (HTTP
        completions received), ``cached`` (calls served from the cache). A snapshot copy."""
        with self._lock:
            return {stage: dict(c) for stage, c in self._usage.items()}

    def total_usage(self) -> dict[str, int]:
        """The sum of :meth:`usage_by_stage` over stages."""
        total = dict.fromkeys(_STAGE_COUNTERS, 0)
        for counters in self.usage_by_stage().values():
            for k in _STAGE_COUNTERS:
                total[k] += counters[k]
        return total

    # ---------------------------------------------------------------------------------------- calls
    def _parse(self, stage: str, text: str, schema: dict[str, Any], finish_reason: str | None) -> Any:
        try:
            data = extract_json(text, expect=_schema_type(schema))
        except ValueError as e:
            reason = str(e)
            if finish_reason == "length":
                reason += " (the reply was cut off at max_tokens)"
            raise LLMOutputError(stage, reason, text) from None
        violation = validate_json(data, schema)
        if violation is not None:
            raise LLMOutputError(stage, f"schema violation at {violation}", text)
        return data

    def complete(
        self,
        stage: str,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        key_extra: str = "",
    ) -> LLMResponse:
        """The reply to ``messages`` for pipeline stage ``stage``, from the cache or the endpoint.

        With ``schema``: ``data`` holds the parsed, valid JSON, or :class:`LLMOutputError` is raised.
        ``key_extra`` only varies the cache key (e.g. ``"sample-3"`` to draw several samples of one
        prompt). Endpoint failures raise :class:`LLMRequestError`."""
        if schema is not None:
            import jsonschema

            jsonschema.validators.validator_for(schema).check_schema(schema)
        key = self.cache_key(messages, schema=schema, key_extra=key_extra)
        lock = self._key_lock(key)
        try:
            with lock:
                return self._complete_locked(stage, messages, schema, key)
        finally:
            self._release_key(key)

    def _complete_locked(
        self, stage: str, messages: list[dict[str, Any]], schema: dict[str, Any] | None, key: str
    ) -> LLMResponse:
        entry = self._read_cache(key)
        if entry is not None and entry.get("valid", True):
            text = entry["text"]
            data = None
            try:
                if schema is not None:
                    data = self._parse(stage, text, schema, entry.get("finish_reason"))
            except LLMOutputError as e:  # an entry edited by hand, or marked valid by an older version
                log.warning("cached reply %s no longer validates (%s); asking again", key, e.reason)
            else:
                self._count(stage, cached=1)
                return LLMResponse(
                    text=text,
                    data=data,
                    usage={k: int(v) for k, v in entry.get("usage", {}).items()},
                    cached=True,
                    key=key,
                    finish_reason=entry.get("finish_reason"),
                )

        call = _Call(seed=self.seed)
        if schema is not None and self.use_response_format:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", stage)[:64] or "output"
            call.extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": False},
            }
        try:
            completion = self._endpoint.complete(messages, call)  # type: ignore[arg-type]
        except ContextOverflow as e:
            raise LLMRequestError(stage, str(e), context_overflow=True) from e
        except PolicyError as e:
            raise LLMRequestError(stage, str(e)) from e
        usage = dict(completion.usage)
        self._count(
            stage,
            requests=1,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )
        text = completion.text
        new_entry: dict[str, Any] = {
            "key": key,
            "version": CACHE_VERSION,
            "stage": stage,
            "model": self.model,
            "created": time.time(),
            "text": text,
            "usage": usage,
            "finish_reason": completion.finish_reason,
            "valid": True,
            "error": None,
            "request": {"messages": messages, "params": self._params(), "schema": schema},
        }
        data = None
        if schema is not None:
            try:
                data = self._parse(stage, text, schema, completion.finish_reason)
            except LLMOutputError as e:
                new_entry.update(valid=False, error=e.reason)
                self._write_cache(key, new_entry)
                raise
        self._write_cache(key, new_entry)
        return LLMResponse(
            text=text, data=data, usage=usage, cached=False, key=key, finish_reason=completion.finish_reason
        )


__all__ = [
    "LLMError",
    "LLMOutputError",
    "LLMRequestError",
    "LLMResponse",
    "SynthLLM",
    "extract_json",
    "validate_json",
]
