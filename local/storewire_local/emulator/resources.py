"""Create the template's resources in moto."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from .stack import Stack

log = logging.getLogger("storewire.emulator")

# created in this order (queues before the rules that target them, DLQs before sources)
ORDER = [
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::Serverless::SimpleTable",
    "AWS::SecretsManager::Secret",
    "AWS::SSM::Parameter",
    "AWS::SQS::Queue",
    "AWS::Events::EventBus",
    "AWS::Events::Archive",
    "AWS::Events::Rule",
]


class ResourceCreator:
    """Creates what the template declares, using boto3 clients bound to moto."""

    def __init__(self, stack: Stack, session: Any, env: Mapping[str, str]) -> None:
        self.stack = stack
        self.session = session
        self.env = env
        self.created: dict[str, str] = {}
        self.skipped: dict[str, str] = {}

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.stack.aws_endpoint_url)

    def create_all(self) -> dict[str, str]:
        resources = self.stack.resources
        by_type: dict[str, list[str]] = {}
        for lid, res in resources.items():
            by_type.setdefault(str(res.get("Type")), []).append(lid)
        for rtype in ORDER:
            ids = by_type.pop(rtype, [])
            if rtype == "AWS::SQS::Queue":
                ids = self._queues_in_dependency_order(ids)
            for lid in ids:
                handler = getattr(self, "_create_" + rtype.split("::", 1)[1].replace("::", "_"))
                handler(lid)
        for rtype, ids in by_type.items():
            for lid in ids:
                self.skipped[lid] = rtype
                log.debug("skipping %s (%s): not emulated locally", lid, rtype)
        return self.created

    # -- helpers

    def _queues_in_dependency_order(self, ids: list[str]) -> list[str]:
        ordered: list[str] = []

        def visit(lid: str, seen: frozenset[str] = frozenset()) -> None:
            if lid in ordered or lid in seen:
                return
            raw = self.stack.raw_properties(lid).get("RedrivePolicy") or {}
            target = raw.get("deadLetterTargetArn") if isinstance(raw, dict) else None
            dep = _referenced_id(target)
            if dep in ids:
                visit(dep, seen | {lid})
            ordered.append(lid)

        for lid in ids:
            visit(lid)
        return ordered

    # -- creators

    def _create_Logs_LogGroup(self, lid: str) -> None:
        name = self.stack.physical_name(lid)
        self.client("logs").create_log_group(logGroupName=name)
        self.created[lid] = name

    def _create_S3_Bucket(self, lid: str) -> None:
        name = self.stack.physical_name(lid)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        props = self.stack.properties(lid)
        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
        self.created[lid] = name

    def _create_DynamoDB_Table(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        ddb = self.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
        }
        billing = props.get("BillingMode", "PROVISIONED")
        throughput = props.get("ProvisionedThroughput") or {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }
        throughput = {k: int(v) for k, v in throughput.items()}
        if billing == "PAY_PER_REQUEST":
            kwargs["BillingMode"] = "PAY_PER_REQUEST"
        else:
            kwargs["ProvisionedThroughput"] = throughput
        gsis = []
        for gsi in props.get("GlobalSecondaryIndexes") or []:
            item = {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection") if k in gsi}
            if billing != "PAY_PER_REQUEST":
                item["ProvisionedThroughput"] = {
                    k: int(v) for k, v in (gsi.get("ProvisionedThroughput") or throughput).items()
                }
            gsis.append(item)
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        lsis = [
            {k: lsi[k] for k in ("IndexName", "KeySchema", "Projection") if k in lsi}
            for lsi in props.get("LocalSecondaryIndexes") or []
        ]
        if lsis:
            kwargs["LocalSecondaryIndexes"] = lsis
        stream = props.get("StreamSpecification")
        if stream:
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        table = ddb.create_table(**kwargs)["TableDescription"]
        if table.get("LatestStreamArn"):
            self.stack.actual_attrs[(lid, "StreamArn")] = table["LatestStreamArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and _truthy(ttl.get("Enabled")):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.created[lid] = name

    def _create_Serverless_SimpleTable(self, lid: str) -> None:
        props = self.stack.properties(lid)
        key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        ktype = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
        name = self.stack.physical_name(lid)
        self.client("dynamodb").create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": key["Name"], "AttributeType": ktype}],
            KeySchema=[{"AttributeName": key["Name"], "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.created[lid] = name

    def _create_SecretsManager_Secret(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        metadata = (self.stack.template["Resources"][lid].get("Metadata") or {}).get(
            "Storewire"
        ) or {}
        if metadata.get("LocalEnv") or "LocalDefault" in metadata:
            env_name = metadata.get("LocalEnv")
            current = (self.env.get(env_name) if env_name else None) or str(
                metadata.get("LocalDefault", "")
            )
            previous = (self.env.get(f"{env_name}_PREVIOUS") if env_name else None) or ""
            secret = json.dumps({"current": current, "previous": previous})
        elif "SecretString" in props:
            secret = str(props["SecretString"])
        else:
            secret = json.dumps({"password": os.urandom(16).hex()})
        answer = self.client("secretsmanager").create_secret(Name=name, SecretString=secret)
        self.stack.actual_refs[lid] = answer["ARN"]
        self.stack.actual_attrs[(lid, "Arn")] = answer["ARN"]
        self.stack.actual_attrs[(lid, "Id")] = answer["ARN"]
        self.created[lid] = answer["ARN"]

    def _create_SSM_Parameter(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        self.client("ssm").put_parameter(
            Name=name,
            Value=str(props.get("Value", "")),
            Type=str(props.get("Type", "String")),
            Overwrite=True,
        )
        self.created[lid] = name

    def _create_SQS_Queue(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        attributes: dict[str, str] = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if key in ("RedrivePolicy", "RedriveAllowPolicy"):
                attributes[key] = json.dumps(value) if isinstance(value, dict) else str(value)
            elif isinstance(value, bool):
                attributes[key] = "true" if value else "false"
            else:
                attributes[key] = str(value)
        answer = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)
        self.stack.actual_refs[lid] = answer["QueueUrl"]
        self.created[lid] = answer["QueueUrl"]

    def _create_Events_EventBus(self, lid: str) -> None:
        name = self.stack.physical_name(lid)
        if name != "default":
            self.client("events").create_event_bus(Name=name)
        self.created[lid] = name

    def _create_Events_Archive(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        kwargs: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": props["SourceArn"]}
        if props.get("EventPattern"):
            pattern = props["EventPattern"]
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if props.get("RetentionDays") is not None:
            kwargs["RetentionDays"] = int(props["RetentionDays"])
        try:
            answer = self.client("events").create_archive(**kwargs)
            self.stack.actual_attrs[(lid, "Arn")] = answer["ArchiveArn"]
            self.created[lid] = name
        except Exception as exc:  # the recorder is the archive locally
            self.skipped[lid] = "AWS::Events::Archive"
            log.warning("archive %s not created in moto (%s); the recorder stands in", lid, exc)

    def _create_Events_Rule(self, lid: str) -> None:
        props = self.stack.properties(lid)
        name = self.stack.physical_name(lid)
        events = self.client("events")
        bus = Stack._bus_name(props.get("EventBusName") or "default")
        kwargs: dict[str, Any] = {
            "Name": name,
            "EventBusName": bus,
            "State": props.get("State", "ENABLED"),
        }
        if props.get("EventPattern") is not None:
            pattern = props["EventPattern"]
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if props.get("ScheduleExpression"):
            kwargs["ScheduleExpression"] = props["ScheduleExpression"]
        if props.get("Description"):
            kwargs["Description"] = props["Description"]
        events.put_rule(**kwargs)
        targets = []
        for target in props.get("Targets") or []:
            arn = str(target.get("Arn", ""))
            service = arn.split(":")[2] if arn.count(":") >= 5 else ""
            if service == "lambda" and props.get("ScheduleExpression"):
                log.debug("rule %s: fired by the emulator's scheduler", lid)
                continue
            if service not in ("sqs", "logs", "events"):
                log.warning(
                    "rule %s: target %s (%s) is not delivered locally", lid, target.get("Id"), arn
                )
                continue
            if "InputPath" in target or "InputTransformer" in target or "Input" in target:
                log.warning("rule %s: target %s input shaping is ignored by moto", lid, arn)
            item = {k: target[k] for k in ("Id", "Arn", "SqsParameters") if k in target}
            if service == "logs" and arn.endswith(":*"):
                # GetAtt LogGroup.Arn ends in ":*"; moto looks the group up by the bare name
                item["Arn"] = arn[:-2]
            targets.append(item)
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self.created[lid] = name


def _referenced_id(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
