"""CloudFormation/SAM template loading and intrinsic-function resolution.

Only what the emulator needs: a YAML loader that understands the short-form tags,
Globals merged into each ``AWS::Serverless::Function``, Parameters (defaults, overrides,
``Stage=local``), pseudo parameters, Conditions, and ``Ref``/``Fn::GetAtt`` of resources
answered with the local physical names, ARNs and URLs.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("storewire.emulator")

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "storewire-local"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/"
        "00000000-0000-0000-0000-000000000000"
    ),
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": URL_SUFFIX,
    "AWS::NotificationARNs": [],
}


class TemplateError(Exception):
    """The template cannot be loaded or resolved."""


class _NoValue:
    """``AWS::NoValue``: removes the property (or list item) that holds it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

# ---------------------------------------------------------------- YAML loading

_SHORT_TAGS = (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "Length",
    "ToJsonString",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation short-form tags (``!Ref``, ``!Sub``, ...)."""


def _construct_node(loader: CfnLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unsupported YAML node {node!r}")  # pragma: no cover


def _make_fn(name: str) -> Callable[[CfnLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        return {f"Fn::{name}": _construct_node(loader, node)}

    return construct


def _construct_ref(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Ref": _construct_node(loader, node)}


def _construct_condition(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    return {"Condition": _construct_node(loader, node)}


def _construct_getatt(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": value}


def _construct_timestamp_as_str(loader: CfnLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


CfnLoader.add_constructor("!Ref", _construct_ref)
CfnLoader.add_constructor("!Condition", _construct_condition)
CfnLoader.add_constructor("!GetAtt", _construct_getatt)
CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_str)
for _tag in _SHORT_TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _make_fn(_tag))


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON) into plain long-form data."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return data


# ---------------------------------------------------------------- Globals


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM Globals semantics: maps merge (function wins), lists are additive, scalars override."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if len(local_value) == 1 and next(iter(local_value)).startswith(("Fn::", "Ref")):
            return copy.deepcopy(local_value)
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


def apply_globals(template: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the template with ``Globals.Function`` merged into each function."""
    result = copy.deepcopy(template)
    globals_ = result.get("Globals") or {}
    function_globals = globals_.get("Function") or {}
    if not function_globals:
        return result
    for resource in result["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        for key, value in function_globals.items():
            props[key] = _merge_globals(value, props[key]) if key in props else value
    return result


# ---------------------------------------------------------------- resolution

RefProvider = Callable[[str], Any]
GetAttProvider = Callable[[str, str], Any]


class Resolver:
    """Evaluates intrinsic functions against parameters, conditions and resource values."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameter_overrides: Mapping[str, str] | None = None,
        ref_provider: RefProvider | None = None,
        getatt_provider: GetAttProvider | None = None,
    ) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self.ref_provider = ref_provider
        self.getatt_provider = getatt_provider
        self.parameters = self._parameters(parameter_overrides or {})
        self._condition_defs: Mapping[str, Any] = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}

    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        declared: Mapping[str, Any] = self.template.get("Parameters") or {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in overrides:
                raw: Any = overrides[name]
            elif name == "Stage":
                raw = "local"
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default and no override")
            ptype = str(spec.get("Type", "String"))
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                values[name] = (
                    [item.strip() for item in raw.split(",")]
                    if isinstance(raw, str)
                    else [str(item) for item in raw]
                )
            elif isinstance(raw, bool):
                values[name] = "true" if raw else "false"
            else:
                values[name] = str(raw)
        return values

    # -- conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._condition_defs:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(self._condition_defs[name]))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        condition = (self.resources.get(logical_id) or {}).get("Condition")
        return True if condition is None else self.condition(str(condition))

    # -- evaluation

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key = next(iter(value))
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                return self._intrinsic(key, value[key])
        result: dict[str, Any] = {}
        for key, item in value.items():
            resolved = self.resolve(item)
            if resolved is not NO_VALUE:
                result[key] = resolved
        return result

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            if self.ref_provider is None:
                raise TemplateError(f"Ref {name}: resources are not resolvable here")
            return self.ref_provider(name)
        raise TemplateError(f"Ref to unknown name {name}")

    def getatt(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt of unknown resource {logical_id}")
        if self.getatt_provider is None:
            raise TemplateError(f"GetAtt {logical_id}.{attribute}: not resolvable here")
        return self.getatt_provider(logical_id, attribute)

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(str(self.resolve(arg)))
        if key == "Condition":
            return self.condition(str(arg))
        name = key[4:]
        if name == "GetAtt":
            parts = self.resolve(arg)
            if isinstance(parts, str):
                parts = parts.split(".", 1)
            return self.getatt(str(parts[0]), str(parts[1]))
        if name == "Sub":
            return self._sub(arg)
        if name == "Join":
            delimiter, items = self.resolve(arg)
            return str(delimiter).join(_to_str(item) for item in items)
        if name == "Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if name == "Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(str(delimiter))
        if name == "If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(condition)) else when_false)
        if name == "Equals":
            left, right = self.resolve(arg)
            return _to_str(left) == _to_str(right)
        if name == "Not":
            (inner,) = arg
            return not self._truth(inner)
        if name == "And":
            return all(self._truth(item) for item in arg)
        if name == "Or":
            return any(self._truth(item) for item in arg)
        if name == "FindInMap":
            map_name, top, second = (self.resolve(item) for item in arg[:3])
            try:
                return self.mappings[map_name][top][second]
            except KeyError as exc:
                if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                    return self.resolve(arg[3]["DefaultValue"])
                raise TemplateError(f"FindInMap {map_name}/{top}/{second}: no entry") from exc
        if name == "GetAZs":
            return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
        if name == "ImportValue":
            export = self.resolve(arg)
            log.warning("Fn::ImportValue %s has no local value; using a placeholder", export)
            return f"imported-{export}"
        if name == "Base64":
            return base64.b64encode(_to_str(self.resolve(arg)).encode()).decode()
        if name == "Length":
            return len(self.resolve(arg))
        if name == "ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if name == "Cidr":
            log.warning("Fn::Cidr is not evaluated locally")
            return []
        raise TemplateError(f"unsupported intrinsic {key}")

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return self.condition(str(value["Condition"]))
        resolved = self.resolve(value)
        if isinstance(resolved, str):
            return resolved.lower() == "true"
        return bool(resolved)

    _SUB_RE = re.compile(r"\$\{([^}]+)\}")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return _to_str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                logical_id, attribute = expr.split(".", 1)
                return _to_str(self.getatt(logical_id, attribute))
            return _to_str(self.ref(expr))

        return self._SUB_RE.sub(replace, str(text))


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_to_str(item) for item in value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def env_str(value: Any) -> str:
    """A resolved value as a Lambda environment variable (always a string)."""
    if isinstance(value, dict | list) and not isinstance(value, bool):
        return json.dumps(value)
    return _to_str(value)
