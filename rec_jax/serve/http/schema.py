"""The JSON bodies of ``/rank`` and ``/reward``, checked field by field.

Each check failure is a :class:`BadRequest` with a one-line message naming the
field and what was expected; the app answers it with a 4xx and logs nothing.

``POST /rank``::

    {"user": "u17" | 17,                 required: an opaque user id
     "events": [12, 7],                  optional: items consumed since the last call (oldest first)
     "slate_size": 5,                    optional: 1..max_slate (default: the service's)
     "candidates": [3, 4, 9, ...],       optional: rank only these items
     "exclude": [8],                     optional: never show these
     "policy": "epsilon_greedy"}         optional: one of the served policies

``POST /reward``::

    {"decision_id": "...", "rewards": [0, 1, 0, 0, 0]}    one reward per slot of the slate
"""
from __future__ import annotations

import orjson

from rec_jax.serve.http.ranker import RankRequest

MAX_LIST = 10_000  # entries of one id list (events, candidates, exclude)


class BadRequest(ValueError):
    """A request the service refuses: ``status`` (4xx) and a one-line ``message``."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def parse_json(body: bytes) -> dict:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"body: not valid JSON ({str(err).splitlines()[0]})", 400) from None
    if not isinstance(obj, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(obj).__name__}", 400)
    return obj


def _check_fields(obj: dict, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    for name in required:
        if name not in obj:
            raise BadRequest(f"{name}: missing (required fields: {', '.join(required)})")
    extra = sorted(set(obj) - set(required) - set(optional))
    if extra:
        raise BadRequest(f"{extra[0]}: unknown field (expected {', '.join(required + optional)})")


def _int(obj: dict, name: str, low: int, high: int) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name}: expected an integer, got {orjson.dumps(value).decode()[:40]}")
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is out of range (expected {low}..{high})")
    return value


def _items(obj: dict, name: str, num_items: int) -> tuple[int, ...]:
    value = obj[name]
    if not isinstance(value, list):
        raise BadRequest(f"{name}: expected a list of item ids, got {type(value).__name__}")
    if len(value) > MAX_LIST:
        raise BadRequest(f"{name}: {len(value)} entries, at most {MAX_LIST} accepted")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise BadRequest(f"{name}[{i}]: expected an integer item id, got {orjson.dumps(item).decode()[:40]}")
        if not 1 <= item <= num_items:
            raise BadRequest(f"{name}[{i}]: unknown item id {item} (the model knows items 1..{num_items})")
    return tuple(value)


def parse_rank(obj: dict, *, num_items: int, max_slate: int, default_slate: int, policies: tuple[str, ...]
               ) -> RankRequest:
    _check_fields(obj, ("user",), ("events", "slate_size", "candidates", "exclude", "policy"))
    user = obj["user"]
    if isinstance(user, bool) or not isinstance(user, (str, int)) or user == "":
        raise BadRequest("user: expected a non-empty string or an integer id")
    if isinstance(user, str) and len(user) > 256:
        raise BadRequest(f"user: {len(user)} characters, at most 256 accepted")
    slate_size = default_slate
    if "slate_size" in obj:
        slate_size = _int(obj, "slate_size", 1, min(max_slate, num_items))
    events = _items(obj, "events", num_items) if "events" in obj else ()
    candidates = None
    if obj.get("candidates") is not None:
        candidates = _items(obj, "candidates", num_items)
    exclude = _items(obj, "exclude", num_items) if "exclude" in obj else ()
    policy = obj.get("policy", "") or ""
    if policy and policy not in policies:
        raise BadRequest(f"policy: {policy!r} is not served (served: {', '.join(policies)})")
    return RankRequest(user=str(user), events=events, slate_size=slate_size, candidates=candidates,
                       exclude=exclude, policy=policy)


def parse_reward(obj: dict, *, max_slate: int) -> tuple[str, list[float]]:
    _check_fields(obj, ("decision_id", "rewards"), ())
    decision_id = obj["decision_id"]
    if not isinstance(decision_id, str) or not decision_id:
        raise BadRequest("decision_id: expected the non-empty string /rank returned")
    rewards = obj["rewards"]
    if not isinstance(rewards, list) or not rewards:
        raise BadRequest("rewards: expected a non-empty list of numbers, one per slot")
    if len(rewards) > max_slate:
        raise BadRequest(f"rewards: {len(rewards)} values, but slates have at most {max_slate} slots")
    for i, r in enumerate(rewards):
        if isinstance(r, bool) or not isinstance(r, (int, float)) or r != r or r in (float("inf"), float("-inf")):
            raise BadRequest(f"rewards[{i}]: expected a finite number, got {orjson.dumps(r).decode()[:40]}")
    return decision_id, [float(r) for r in rewards]
