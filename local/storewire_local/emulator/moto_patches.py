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
- Every request lists moto's package directory to resolve its backend, and lists its
  response class's methods with ``inspect.getmembers``. Neither can change while the process
  runs, so both are cached.
- A ``Query`` on a table's own key sorts every item of the table and keeps those of the
  partition: O(table) per query, and the stock table grows by a few items per order. We hand
  moto's query the partition's items only (it sorts them by range key itself).
- SQS ``ReceiveMessage`` checks each message's retention by recomputing every attribute of
  the queue (three of which count its messages), and ``GetQueueAttributes`` recomputes them
  all twice per requested name: quadratic in the queue's depth, which a burst of orders
  makes deep. Retention now reads the one attribute; attributes are computed once per call.
  ``SendMessage`` (every EventBridge target) reads one static attribute through the same
  full computation, counting the queue's messages: the counts are skipped while it sends.
- ``PutItem`` validation rebuilds the table's list of key names once per attribute of the
  item; it is built once per request.
- Every DynamoDB answer is serialized by walking botocore's output shape member by member
  (about a fifth of the emulator's process under the reliability suite's load). For the
  data-plane operations the result is already in DynamoDB's wire form (attribute-value maps
  with binaries as bytes), so it is written with ``json.dumps`` directly: binaries as base64,
  ``None`` members and top-level keys outside the output shape left out, as the shape walk
  does. `VERIFY` makes every such answer also
  go through the shape walk and fail on any difference (the unit tests set it).
- Every ``UpdateItem`` parses its UpdateExpression twice (once to check the names and
  values it uses, once to apply it), and the validator deep-copies the tree before
  resolving it against the item. Our handlers use a few dozen distinct expressions, so the
  parsed trees are kept per expression text (they are only read; the validator works on
  its copy), and that copy is made from a pickle of the tree, several times cheaper than
  ``deepcopy`` of the same object graph.
- A queue with a backlog (a 10,000-order run keeps thousands of messages waiting) made every
  ``ReceiveMessage`` read the clock twice per message to list the visible ones, and every
  deleted message rebuild the queue's list after asking each message for all its receipt
  handles: O(depth) Python work per call, so the emulator slowed as the backlog grew. The
  clock is read once per listing, and a receipt handle finds its message through an index
  (handles are unique); the list loses the one message. Anything the index cannot answer
  goes to moto's own code.
- Every conditional write parses its ConditionExpression twice (the response layer checks
  the names it uses, the backend builds the condition to evaluate), with a hand-written
  lexer: a tenth of the emulator's process in a 10,000-order run. A parse depends only on
  the expression, its names and its values, and the condition it builds is only read, so
  it is kept per (expression, names, values) with the names and values the parse found.

``apply()`` is idempotent and called when the emulator's moto server starts. It changes no
answer, so code sharing the process (tests using ``mock_aws``) sees the same behaviour.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import pickle
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
        _partition_scoped_query()
        _linear_sqs_attributes()
        _key_names_once_per_put()
        _sends_do_not_count_messages()
        _plain_dynamodb_answers()
        _parsed_update_expressions_reused()
        _sqs_receive_and_delete_without_rescans()
        _parsed_conditions_reused()
        _update_validation_dispatched_by_type()
        _events_matched_once_per_event()
        _applied = True


def _cache_jsonpath_parser() -> None:
    import jsonpath_ng.ext

    if not hasattr(jsonpath_ng.ext.parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def _cache_backend_listing() -> None:
    import moto.core.responses as responses
    from moto import backends

    listing = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(listing)  # type: ignore[assignment]
    method_names = functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    responses.method_names_from_class = lambda clazz: list(method_names(clazz))


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


def _partition_scoped_query() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        partition = self.items.get(hash_key)  # .get: the items map is a defaultdict
        if partition is None:
            items = []
        elif self.has_range_key:
            items = list(partition.values())
        else:
            items = [partition]
        self.all_items = lambda: items  # the instance attribute shadows the method once
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


def _linear_sqs_attributes() -> None:
    import time

    from moto.sqs.models import SQSBackend

    original_attributes = SQSBackend.get_queue_attributes
    original_retention = SQSBackend.is_message_valid_based_on_retention_period

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        if "All" in attribute_names:
            return original_attributes(self, queue_name, attribute_names)
        everything = original_attributes(self, queue_name, ["All"])
        if any(name not in everything for name in attribute_names):
            return original_attributes(self, queue_name, attribute_names)  # moto's own errors
        return {n: everything[n] for n in attribute_names if everything.get(n) is not None}

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if retention is None:
            return bool(original_retention(self, queue_name, message))
        return int(retention) + message.sent_timestamp / 1000 > time.time()

    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


class _KeylessTable:
    """Truthy, with no key names: every attribute handed to moto's check gets checked."""

    attribute_keys: tuple[str, ...] = ()


def _key_names_once_per_put() -> None:
    import moto.dynamodb.responses as responses

    original = responses.validate_put_has_empty_attrs
    keyless = _KeylessTable()

    def validate_put_has_empty_attrs(field_updates: dict[str, Any], table: Any) -> None:
        if table:
            keys = set(table.attribute_keys)
            original({k: v for k, v in field_updates.items() if k not in keys}, keyless)

    responses.validate_put_has_empty_attrs = validate_put_has_empty_attrs


def _sends_do_not_count_messages() -> None:
    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()

    def skipped_while_sending(prop: property) -> property:
        count = prop.fget
        assert count is not None

        def fget(self: Any) -> Any:
            return 0 if getattr(sending, "depth", 0) else count(self)

        return property(fget)

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(Queue, name, skipped_while_sending(getattr(Queue, name)))

    def sends(method: Any) -> Any:
        @functools.wraps(method)
        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            sending.depth = getattr(sending, "depth", 0) + 1
            try:
                return method(self, *args, **kwargs)
            finally:
                sending.depth -= 1

        return send

    SQSBackend.send_message = sends(SQSBackend.send_message)  # type: ignore[method-assign]


# DynamoDB operations whose results hold only strings, numbers, booleans, bytes, lists and
# maps in wire form (no timestamps, no enums): control-plane answers keep the shape walk.
PLAIN_DYNAMODB_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
VERIFY = False
"""When true, every fast answer is compared with moto's own serialization (tests)."""


class _NotPlain(Exception):
    """A value the fast path does not write; moto's serializer takes the answer."""


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _NotPlain(type(value).__name__)


def _plain_dynamodb_answers() -> None:
    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name not in PLAIN_DYNAMODB_OPERATIONS:
            return original(self, context)
        members = context.operation_model.output_shape.members
        result = self.result
        if not isinstance(result, dict):
            return original(self, context)
        try:
            body = json.dumps(_wire({k: v for k, v in result.items() if k in members}))
        except _NotPlain:
            return original(self, context)
        version = context.operation_model.service_model.metadata.get("jsonVersion", "1.0")
        answer = (
            context.operation_model.http.get("responseCode", 200),
            {"Content-Type": f"application/x-amz-json-{version}"},
            body,
        )
        if VERIFY:
            status, headers, expected = original(self, context)
            if (status, headers, json.loads(expected)) != (
                answer[0],
                answer[1],
                json.loads(body),
            ):
                raise AssertionError(
                    f"{context.operation_model.name}: fast answer {answer!r} differs from "
                    f"moto's {(status, headers, expected)!r}"
                )
        return answer

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


MAX_CACHED_EXPRESSIONS = 4096
"""Distinct UpdateExpressions kept parsed; past that, new ones are parsed every time."""


def _parsed_update_expressions_reused() -> None:
    from moto.dynamodb.parsing import expressions, validators

    parse = expressions.UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, Any] = {}
    pickled: dict[int, bytes] = {}  # id of a kept tree -> its pickle (kept trees never die)
    lock = threading.Lock()

    def make(cls: Any, expression_str: str) -> Any:
        tree = parsed.get(expression_str)
        if tree is not None:
            return tree
        tree = parse(cls, expression_str)
        with lock:
            if expression_str not in parsed and len(parsed) < MAX_CACHED_EXPRESSIONS:
                try:
                    pickled[id(tree)] = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
                except (pickle.PicklingError, TypeError, AttributeError):
                    return tree
                parsed[expression_str] = tree
        return parsed.get(expression_str, tree)

    original_deepcopy = validators.deepcopy

    def deepcopy(value: Any, memo: Any = None) -> Any:
        blob = pickled.get(id(value))
        if blob is not None and memo is None:
            return pickle.loads(blob)  # noqa: S301 - pickled by this process, above
        return original_deepcopy(value, memo)

    expressions.UpdateExpressionParser.make = classmethod(make)  # type: ignore[assignment]
    validators.deepcopy = deepcopy  # type: ignore[assignment]


def _sqs_receive_and_delete_without_rescans() -> None:
    import weakref

    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Message, Queue

    by_handle: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
    original_mark_received = Message.mark_received
    original_delete = Queue.delete_message

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        by_handle[self.receipt_handle] = self

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        message = by_handle.get(receipt_handle)
        index = None
        if message is not None:
            with self._messages_lock:
                index = next((i for i, m in enumerate(self._messages) if m is message), None)
                if index is not None:
                    del self._messages[index]
        if index is None:  # unknown here (never received, moved to its DLQ): moto's answer
            original_delete(self, receipt_handle)
            return
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)

    Message.mark_received = mark_received  # type: ignore[method-assign]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


MAX_CACHED_CONDITIONS = 8192
"""Distinct (condition, names, values) kept parsed; past that, new ones are parsed each time."""


def _parsed_conditions_reused() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    original_parse = ConditionExpressionParser.parse
    parsed: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}

    def parse(self: Any) -> Any:
        if not self.condition_expression:
            return original_parse(self)
        try:
            key = (
                self.condition_expression,
                json.dumps(self.expression_attribute_names or {}, sort_keys=True),
                json.dumps(self.expression_attribute_values or {}, sort_keys=True),
            )
        except (TypeError, ValueError):  # a value JSON cannot hold: parse as moto would
            return original_parse(self)
        kept = parsed.get(key)
        if kept is None:
            op = original_parse(self)  # an invalid expression raises here, every time
            if len(parsed) < MAX_CACHED_CONDITIONS:
                parsed[key] = (
                    op,
                    list(self.expr_attr_names_found),
                    list(self.expr_attr_values_found),
                )
            return op
        op, names_found, values_found = kept
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


def _update_validation_dispatched_by_type() -> None:
    """moto validates an UpdateExpression by walking its tree once per check (ten walks),
    and at every node of every walk rebuilds the check's class -> handler map twice and runs
    ABC ``isinstance`` against it: a sixth of the emulator's time in a load run. The walks,
    their order and their handlers stay moto's; which handler a node type gets is worked out
    once per (check, node type), and each check builds its map once per validation."""
    from moto.dynamodb.parsing import ast_nodes

    node_base = ast_nodes.Node
    traverser = ast_nodes.DepthFirstTraverser
    original = traverser.traverse_node_recursively
    is_node: dict[type, bool] = {}
    dispatches_by_map: dict[type, bool] = {}
    handler_for: dict[tuple[type, type], type | None] = {}

    def handler_key(processor: Any, cls: type, kind: type, node: Any) -> type | None:
        key = (cls, kind)
        try:
            return handler_for[key]
        except KeyError:
            found = next((k for k in processor._processing_map() if isinstance(node, k)), None)
            handler_for[key] = found
            return found

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        cls = type(self)
        plain = dispatches_by_map.get(cls)
        if plain is None:  # a check with its own dispatch keeps moto's walk
            plain = dispatches_by_map[cls] = (
                cls.process is traverser.process
                and cls.nodes_to_be_processed is traverser.nodes_to_be_processed
            )
        if not plain:
            return original(self, node, child_id)
        kind = type(node)
        node_like = is_node.get(kind)
        if node_like is None:
            node_like = is_node[kind] = isinstance(node, node_base)
        if not node_like:
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        handled = handler_key(self, cls, kind, node)
        if handled is not None:
            handlers = self.__dict__.get("_storewire_handlers")
            if handlers is None:
                handlers = self.__dict__["_storewire_handlers"] = self._processing_map()
            node = handlers[handled](node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    traverser.traverse_node_recursively = traverse_node_recursively  # type: ignore[method-assign]


def _events_matched_once_per_event() -> None:
    """moto's PutEvents builds, for every rule on the bus, a fresh copy of each event, parses
    its Detail again and, to match the rule's pattern, serialises and re-parses that copy:
    a tenth of the emulator's time in a load run, for a bus of ten rules; each matching rule
    then rendered the event through moto's default template (eight JSONPath lookups) again.
    Here each event's envelope is built, flattened and rendered once; each rule's pattern is
    judged by moto's own matcher on it, and each queue target gets the rendering, sent by
    moto's own sender. A rule with any other target gets its own copy through moto's own
    path, and anything moto would refuse or warn about goes to moto's own PutEvents."""
    from moto.events import models

    original = models.EventsBackend.put_events

    def details(events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if len(events) > 10:
            return None
        parsed = []
        for event in events:
            if not (event.get("Source") and event.get("DetailType") and event.get("Detail")):
                return None
            try:
                detail = json.loads(event["Detail"])
            except ValueError:
                return None
            if not isinstance(detail, dict):
                return None
            parsed.append(detail)
        return parsed

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = details(events)
        if parsed is None:
            return original(self, events)
        entries = []
        for event, detail in zip(events, parsed, strict=True):
            event_id = str(models.random.uuid4())
            entries.append({"EventId": event_id})
            bus = self.describe_event_bus(self._normalize_event_bus_arn(event.get("EventBusName")))
            envelope = copy.deepcopy(models._BASE_EVENT_MESSAGE)
            envelope["id"] = event_id
            envelope["detail-type"] = event["DetailType"]
            envelope["source"] = event["Source"]
            envelope["account"] = self.account_id
            envelope["time"] = event.get("Time", models.unix_time())
            envelope["region"] = self.region_name
            envelope["resources"] = event.get("Resources", [])
            envelope["detail"] = detail
            envelope["ingestion-time"] = models.unix_time()
            flat = models.EventPattern._flatten_dict(json.loads(json.dumps(envelope)))
            rendered: dict[str, Any] | None = None  # what a queue target receives
            for rule in list(bus.rules.values()):
                pattern = rule.event_pattern.get_pattern()
                if pattern and not rule.event_pattern._does_event_match(flat, pattern):
                    continue
                queues = plain_queue_targets(rule.targets)
                if queues is None:
                    rule.send_to_targets(copy.deepcopy(envelope))
                    continue
                if rendered is None:
                    rendered = models.EventTemplateParser.parse(None, {}, envelope)
                for queue_name, group_id in queues:
                    # it rewrites only the top-level "time": a shallow copy is its own
                    rule._send_to_sqs_queue(queue_name, dict(rendered), group_id)
        return entries

    def plain_queue_targets(targets: list[dict[str, Any]]) -> list[tuple[str, Any]] | None:
        """(queue name, message group) per target when every target is a queue that takes
        the event as is (moto's default template); None sends through moto's own path."""
        queues = []
        for target in targets:
            arn = models.parse_arn(target["Arn"])
            if arn.service != "sqs" or target.get("InputTransformer") or target.get("Input"):
                return None
            queues.append((arn.resource_id, target.get("SqsParameters", {}).get("MessageGroupId")))
        return queues

    models.EventsBackend.put_events = put_events  # type: ignore[method-assign]
