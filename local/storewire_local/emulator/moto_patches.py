"""Make moto cheaper per request inside the emulator, without changing what it answers.

Profiling the emulator under load (py-spy, 40 orders) showed three costs that grow with
traffic or with the data held, none of them part of the behaviour we emulate:

- ``TransactWriteItems`` deep-copies every table it touches before running, to roll back on
  failure. The cost grows with the table (the stock table holds every ledger entry), so a
  10,000-order run slows down as it goes. We snapshot only the items the transaction names
  and restore those; the outcome of a cancelled transaction is the same.
- Every EventBridge rule target re-parses the default input template's JSONPath expressions
  with a freshly built PLY parser (``jsonpath_ng.ext.parse``): 17 % of the process. The
  parsed expressions are immutable, so they are cached.
- Every request lists moto's package directory to resolve its backend. The listing cannot
  change while the process runs, so it is cached.

``apply()`` is idempotent and called when the emulator's moto server starts. It changes no
answer, so code sharing the process (tests using ``mock_aws``) sees the same behaviour.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

_applied = False
_apply_lock = threading.Lock()


def apply() -> None:
    global _applied
    with _apply_lock:
        if _applied:
            return
        _cache_jsonpath_parser()
        _cache_backend_listing()
        _item_level_transaction_rollback()
        _applied = True


def _cache_jsonpath_parser() -> None:
    import jsonpath_ng.ext

    if not hasattr(jsonpath_ng.ext.parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def _cache_backend_listing() -> None:
    from moto import backends

    listing = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(listing)  # type: ignore[assignment]


class _TablesCopiedByReference:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: a Table is "copied"
    as itself (the transaction wrapper below snapshots the items instead); everything else is
    really deep-copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _item_level_transaction_rollback() -> None:
    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend_type = ddb_models.DynamoDBBackend
    original = backend_type.transact_write_items
    ddb_models.copy = _TablesCopiedByReference(Table)  # type: ignore[attr-defined]

    def snapshot(backend: Any, transact_items: list[dict[str, Any]]) -> list[Any]:
        taken = []
        for entry in transact_items:
            op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            if not isinstance(op, dict):
                continue
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            try:
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
                current = table.get_item(hash_value, range_value)
            except Exception:  # noqa: S112 - moto itself reports the invalid request
                continue
            taken.append((table, hash_value, range_value, copy.deepcopy(current)))
        return taken

    def restore(taken: list[Any]) -> None:
        for table, hash_value, range_value, item in reversed(taken):
            if table.has_range_key:
                bucket = table.items[hash_value]
                if item is None:
                    bucket.pop(range_value, None)
                    if not bucket:
                        table.items.pop(hash_value, None)
                else:
                    bucket[range_value] = item
            elif item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        taken = snapshot(self, transact_items)
        try:
            original(self, transact_items)
        except BaseException:
            restore(taken)
            raise

    backend_type.transact_write_items = transact_write_items  # type: ignore[method-assign]
