"""The template as the emulator sees it: physical names, Ref/GetAtt values, functions, events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cfn import (
    ACCOUNT_ID,
    REGION,
    Resolver,
    TemplateError,
    apply_globals,
    env_str,
    load_template,
)

log = logging.getLogger("storewire.emulator")

NAME_PROPERTY: dict[str, str] = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Serverless::SimpleTable": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Events::Archive": "ArchiveName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}

DEFAULT_PREFIX = "storewire-local-"


@dataclass
class EventSource:
    """One entry of a function's ``Events``."""

    name: str
    type: str
    properties: dict[str, Any]


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: float
    memory_size: int
    environment: dict[str, str]
    layer_dirs: list[Path]
    events: list[EventSource] = field(default_factory=list)
    reserved_concurrency: int | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"


class Stack:
    """Parsed template plus the local values of every resource."""

    def __init__(
        self,
        template_path: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        aws_endpoint_url: str = "http://127.0.0.1:5000",
    ) -> None:
        self.template_path = template_path.resolve()
        self.base_dir = self.template_path.parent
        self.template = apply_globals(load_template(self.template_path))
        self.aws_endpoint_url = aws_endpoint_url.rstrip("/")
        self.resolver = Resolver(
            self.template,
            parameter_overrides,
            ref_provider=self.ref,
            getatt_provider=self.getatt,
        )
        self._names: dict[str, str] = {}
        self._resolving: set[str] = set()
        # values learnt from moto after creation (secret ARNs, stream ARNs, queue URLs)
        self.actual_refs: dict[str, str] = {}
        self.actual_attrs: dict[tuple[str, str], str] = {}

    # -- resources

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return {
            lid: res
            for lid, res in self.template["Resources"].items()
            if self.resolver.resource_enabled(lid)
        }

    def resource_type(self, logical_id: str) -> str:
        return str(self.template["Resources"][logical_id].get("Type", ""))

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's Properties with every intrinsic resolved."""
        raw = self.template["Resources"][logical_id].get("Properties") or {}
        resolved: dict[str, Any] = self.resolver.resolve(raw)
        return resolved

    def raw_properties(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.template["Resources"][logical_id].get("Properties") or {}
        return props

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self._names:
            return self._names[logical_id]
        if logical_id in self._resolving:
            raise TemplateError(f"circular name reference through {logical_id}")
        self._resolving.add(logical_id)
        try:
            rtype = self.resource_type(logical_id)
            key = NAME_PROPERTY.get(rtype)
            raw = self.raw_properties(logical_id).get(key) if key else None
            if raw is not None:
                name = str(self.resolver.resolve(raw))
            else:
                name = DEFAULT_PREFIX + logical_id
                if rtype == "AWS::S3::Bucket":
                    name = name.lower()
                if rtype == "AWS::SQS::Queue" and _truthy(
                    self.raw_properties(logical_id).get("FifoQueue")
                ):
                    name += ".fifo"
            self._names[logical_id] = name
            return name
        finally:
            self._resolving.discard(logical_id)

    def queue_url(self, logical_id: str) -> str:
        if logical_id in self.actual_refs:
            return self.actual_refs[logical_id]
        return f"{self.aws_endpoint_url}/{ACCOUNT_ID}/{self.physical_name(logical_id)}"

    def arn(self, logical_id: str) -> str:
        if (logical_id, "Arn") in self.actual_attrs:
            return self.actual_attrs[(logical_id, "Arn")]
        rtype = self.resource_type(logical_id)
        name = self.physical_name(logical_id)
        prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:"
        match rtype:
            case "AWS::SQS::Queue":
                return prefix.format("sqs") + name
            case "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable":
                return prefix.format("dynamodb") + f"table/{name}"
            case "AWS::Events::EventBus":
                return prefix.format("events") + f"event-bus/{name}"
            case "AWS::Events::Rule":
                bus = self.raw_properties(logical_id).get("EventBusName")
                bus_name = self._bus_name(self.resolver.resolve(bus)) if bus else "default"
                if bus_name == "default":
                    return prefix.format("events") + f"rule/{name}"
                return prefix.format("events") + f"rule/{bus_name}/{name}"
            case "AWS::Events::Archive":
                return prefix.format("events") + f"archive/{name}"
            case "AWS::S3::Bucket":
                return f"arn:aws:s3:::{name}"
            case "AWS::SecretsManager::Secret":
                return prefix.format("secretsmanager") + f"secret:{name}"
            case "AWS::SSM::Parameter":
                return prefix.format("ssm") + f"parameter/{name.lstrip('/')}"
            case "AWS::Serverless::Function" | "AWS::Lambda::Function":
                return prefix.format("lambda") + f"function:{name}"
            case "AWS::Logs::LogGroup":
                return prefix.format("logs") + f"log-group:{name}:*"
            case "AWS::SNS::Topic":
                return prefix.format("sns") + name
            case "AWS::IAM::Role":
                return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
            case "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion":
                return prefix.format("lambda") + f"layer:{name}:1"
            case _:
                return prefix.format(rtype.split("::")[1].lower()) + name

    @staticmethod
    def _bus_name(value: Any) -> str:
        text = str(value)
        return text.split("event-bus/", 1)[1] if "event-bus/" in text else text

    def layer_dir(self, logical_id: str) -> Path:
        props = self.properties(logical_id)
        content = props.get("ContentUri") or props.get("Content") or "."
        if not isinstance(content, str):
            raise TemplateError(f"layer {logical_id}: only a local ContentUri is supported")
        return (self.base_dir / content).resolve()

    def ref(self, logical_id: str) -> Any:
        if logical_id in self.actual_refs:
            return self.actual_refs[logical_id]
        rtype = self.resource_type(logical_id)
        match rtype:
            case "AWS::SQS::Queue":
                return self.queue_url(logical_id)
            case "AWS::SecretsManager::Secret" | "AWS::SNS::Topic":
                return self.arn(logical_id)
            case "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion":
                return str(self.layer_dir(logical_id))
            case "AWS::Serverless::HttpApi" | "AWS::Serverless::Api" | "AWS::ApiGatewayV2::Api":
                return "local"
            case _:
                return self.physical_name(logical_id)

    def getatt(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.actual_attrs:
            return self.actual_attrs[(logical_id, attribute)]
        rtype = self.resource_type(logical_id)
        name = self.physical_name(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute in ("QueueName", "Name", "TableName", "BucketName", "ArchiveName"):
            return name
        if attribute == "QueueUrl":
            return self.queue_url(logical_id)
        if attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/1970-01-01T00:00:00.000"
        if attribute in ("DomainName", "RegionalDomainName"):
            return f"{name}.s3.amazonaws.com"
        if attribute == "ApiEndpoint":
            return "http://127.0.0.1"
        if attribute == "Id" and rtype == "AWS::SecretsManager::Secret":
            return self.arn(logical_id)
        log.debug("GetAtt %s.%s: no local value, using the physical name", logical_id, attribute)
        return name

    # -- functions

    def functions(self) -> dict[str, FunctionSpec]:
        return {
            lid: self.function(lid)
            for lid, res in self.resources.items()
            if res.get("Type") == "AWS::Serverless::Function"
        }

    def function(self, logical_id: str) -> FunctionSpec:
        if self.resource_type(logical_id) != "AWS::Serverless::Function":
            raise TemplateError(f"{logical_id} is not an AWS::Serverless::Function")
        raw = self.raw_properties(logical_id)
        props = self.properties(logical_id)
        code_uri = props.get("CodeUri", ".")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: only a local CodeUri is supported")
        env_vars = ((props.get("Environment") or {}).get("Variables")) or {}
        layer_dirs: list[Path] = []
        for layer_raw, layer in zip(
            raw.get("Layers") or [], props.get("Layers") or [], strict=False
        ):
            if isinstance(layer_raw, dict) and "Ref" in layer_raw:
                layer_dirs.append(Path(str(layer)))
            elif isinstance(layer, str) and Path(layer).is_dir():
                layer_dirs.append(Path(layer))
            else:
                log.debug("%s: layer %s is not local; skipped", logical_id, layer)
        events = [
            EventSource(name=name, type=str(ev.get("Type")), properties=ev.get("Properties") or {})
            for name, ev in (props.get("Events") or {}).items()
        ]
        reserved = props.get("ReservedConcurrentExecutions")
        return FunctionSpec(
            logical_id=logical_id,
            name=self.physical_name(logical_id),
            code_dir=(self.base_dir / code_uri).resolve(),
            handler=str(props.get("Handler", "app.lambda_handler")),
            runtime=str(props.get("Runtime", "python3.13")),
            timeout=float(props.get("Timeout", 3)),
            memory_size=int(props.get("MemorySize", 128)),
            environment={str(k): env_str(v) for k, v in env_vars.items()},
            layer_dirs=layer_dirs,
            events=events,
            reserved_concurrency=int(reserved) if reserved is not None else None,
        )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
