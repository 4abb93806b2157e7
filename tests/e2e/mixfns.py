"""Per-source transforms of the mixture tests (module level: they pickle into workers). Each
maps its source's fields to the same ``x`` (bytes) and ``n`` (int) fields."""

from __future__ import annotations

from typing import Any


def _keep(s: dict[str, Any], x: bytes, n: int) -> dict[str, Any]:
    return {"x": x, "n": n, **{k: v for k, v in s.items() if k.startswith("__")}}


def tar_to_xn(s: dict[str, Any]) -> dict[str, Any]:
    return _keep(s, bytes(s["bin"]), int(s["cls"]))


def pq_to_xn(s: dict[str, Any]) -> dict[str, Any]:
    return _keep(s, str(s["title"]).encode(), int(s["id"]))


def js_to_xn(s: dict[str, Any]) -> dict[str, Any]:
    return _keep(s, str(s["text"]).encode(), int(s["id"]))
