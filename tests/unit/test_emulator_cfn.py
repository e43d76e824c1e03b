"""The emulator's template reading: short-form tags, intrinsics, Globals, physical names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from storewire_local.emulator.cfn import (
    NO_VALUE,
    Resolver,
    TemplateError,
    apply_globals,
    load_template,
)
from storewire_local.emulator.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "e2e" / "fixtures" / "template.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_short_form_tags_load_as_long_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        AWSTemplateFormatVersion: 2010-09-09
        Resources:
          R:
            Type: X
            Properties:
              A: !Ref P
              B: !GetAtt Q.Arn
              C: !Sub "${AWS::Region}-x"
              D: !Join [",", [a, b]]
              E: !If [Cond, 1, 2]
              F: !Select [0, !Split [",", "a,b"]]
              G: !Equals [a, b]
              H: !Not [!Condition Cond]
              I: !And [!Condition Cond, !Condition Cond]
              J: !Or [!Condition Cond, !Condition Cond]
              K: !FindInMap [M, a, b]
              L: !GetAZs ""
              N: !ImportValue other
              O: !GetAtt [Q, QueueName]
        """,
    )
    data = load_template(path)
    assert data["AWSTemplateFormatVersion"] == "2010-09-09"
    props = data["Resources"]["R"]["Properties"]
    assert props["A"] == {"Ref": "P"}
    assert props["B"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert props["C"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert props["D"] == {"Fn::Join": [",", ["a", "b"]]}
    assert props["E"] == {"Fn::If": ["Cond", 1, 2]}
    assert props["F"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}
    assert props["H"] == {"Fn::Not": [{"Condition": "Cond"}]}
    assert props["K"] == {"Fn::FindInMap": ["M", "a", "b"]}
    assert props["L"] == {"Fn::GetAZs": ""}
    assert props["N"] == {"Fn::ImportValue": "other"}
    assert props["O"] == {"Fn::GetAtt": ["Q", "QueueName"]}


def test_a_file_without_resources_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError):
        load_template(write(tmp_path, "Foo: 1\n"))


def resolver(overrides: dict[str, str] | None = None) -> Resolver:
    template = {
        "Parameters": {
            "Stage": {"Type": "String", "Default": "dev"},
            "Size": {"Type": "Number", "Default": 3},
            "Names": {"Type": "CommaDelimitedList", "Default": "a,b"},
        },
        "Mappings": {"Ttl": {"72": {"Seconds": "259200"}}},
        "Conditions": {
            "IsLocal": {"Fn::Equals": [{"Ref": "Stage"}, "local"]},
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Both": {"Fn::And": [{"Condition": "IsLocal"}, {"Condition": "NotProd"}]},
            "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "IsLocal"}]},
        },
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
    }
    return Resolver(
        template,
        overrides,
        ref_provider=lambda lid: f"ref:{lid}",
        getatt_provider=lambda lid, attr: f"{lid}.{attr}",
    )


def test_parameters_pseudo_parameters_and_stage_local() -> None:
    r = resolver()
    assert r.resolve({"Ref": "Stage"}) == "local"
    assert r.resolve({"Ref": "Size"}) == "3"
    assert r.resolve({"Ref": "Names"}) == ["a", "b"]
    assert r.resolve({"Ref": "AWS::Region"}) == "us-east-1"
    assert r.resolve({"Ref": "AWS::AccountId"}) == "123456789012"
    assert r.resolve({"Ref": "AWS::StackName"}) == "storewire-local"
    assert r.resolve({"Ref": "AWS::Partition"}) == "aws"
    assert r.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert resolver({"Stage": "qa"}).resolve({"Ref": "Stage"}) == "qa"
    with pytest.raises(TemplateError):
        r.resolve({"Ref": "Nope"})


def test_conditions_and_functions() -> None:
    r = resolver()
    assert r.condition("IsLocal") is True
    assert r.condition("Both") is True
    assert r.condition("Either") is True
    assert r.resolve({"Fn::If": ["IsProd", "p", "np"]}) == "np"
    assert r.resolve({"A": {"Fn::If": ["IsProd", "p", {"Ref": "AWS::NoValue"}]}, "B": 1}) == {
        "B": 1
    }
    assert r.resolve([{"Ref": "AWS::NoValue"}, 1]) == [1]
    assert r.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE
    assert r.resolve({"Fn::FindInMap": ["Ttl", "72", "Seconds"]}) == "259200"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert r.resolve({"Fn::Join": ["-", ["x", {"Ref": "Stage"}, 3]]}) == "x-local-3"
    assert r.resolve({"Fn::GetAZs": ""})[0] == "us-east-1a"
    assert r.resolve({"Ref": "Q"}) == "ref:Q"
    assert r.resolve({"Fn::GetAtt": ["Q", "Arn"]}) == "Q.Arn"
    assert r.resolve({"Fn::GetAtt": "Q.QueueName"}) == "Q.QueueName"


def test_sub_forms() -> None:
    r = resolver()
    assert r.resolve({"Fn::Sub": "s-${Stage}-${AWS::Region}"}) == "s-local-us-east-1"
    assert r.resolve({"Fn::Sub": "${Q}|${Q.Arn}|${!Literal}"}) == "ref:Q|Q.Arn|${Literal}"
    assert r.resolve({"Fn::Sub": ["${A}/${Stage}", {"A": {"Ref": "Size"}}]}) == "3/local"


def test_globals_merge_into_functions() -> None:
    template = {
        "Globals": {
            "Function": {
                "Timeout": 30,
                "Layers": ["g"],
                "Environment": {"Variables": {"A": "global", "B": "global"}},
            }
        },
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Timeout": 10,
                    "Layers": ["f"],
                    "Environment": {"Variables": {"B": "function"}},
                },
            },
            "Other": {"Type": "AWS::SQS::Queue"},
        },
    }
    props = apply_globals(template)["Resources"]["F"]["Properties"]
    assert props["Timeout"] == 10
    assert props["Layers"] == ["g", "f"]
    assert props["Environment"]["Variables"] == {"A": "global", "B": "function"}
    assert "Properties" not in apply_globals(template)["Resources"]["Other"]


def test_fixture_stack_names_refs_and_functions() -> None:
    stack = Stack(FIXTURE, aws_endpoint_url="http://127.0.0.1:9999")
    assert stack.physical_name("WorkQueue") == "fixture-work-local"
    assert stack.physical_name("WorkDeadLetterQueue") == "storewire-local-WorkDeadLetterQueue"
    assert stack.physical_name("BlobBucket") == "storewire-local-blobbucket"
    assert stack.ref("WorkQueue") == "http://127.0.0.1:9999/123456789012/fixture-work-local"
    assert stack.ref("Bus") == "fixture-local"
    assert stack.ref("CounterTable") == "fixture-counters-local"
    assert (
        stack.getatt("Bus", "Arn")
        == "arn:aws:events:us-east-1:123456789012:event-bus/fixture-local"
    )
    assert stack.ref("FixtureLayer").endswith("tests/e2e/fixtures/layers/fixturelib")
    assert "ProdOnlyQueue" not in stack.resources
    functions = stack.functions()
    consumer = functions["ConsumerFunction"]
    assert consumer.timeout == 5
    assert consumer.memory_size == 256
    assert consumer.environment["TABLE_NAME"] == "fixture-counters-local"
    assert consumer.environment["EVENT_BUS_NAME"] == "fixture-local"
    assert consumer.layer_dirs[0].name == "fixturelib"
    (event,) = consumer.events
    assert (event.type, event.properties["BatchSize"]) == ("SQS", 5)
    assert event.properties["Queue"] == "arn:aws:sqs:us-east-1:123456789012:fixture-work-local"
    assert functions["EchoFunction"].timeout == 3


@pytest.mark.skipif(not (REPO_ROOT / "template.yaml").is_file(), reason="no template.yaml yet")
def test_the_real_template_resolves() -> None:
    stack = Stack(REPO_ROOT / "template.yaml")
    ingest = stack.function("WebhookIngestFunction")
    env = ingest.environment
    assert env["EVENT_BUS_NAME"] == "storewire-local"
    assert env["DEDUPE_TABLE_NAME"] == stack.physical_name("WebhookDedupeTable")
    assert env["DEDUPE_TTL_SECONDS"] == "259200"
    assert env["MAX_BODY_BYTES"] == "4194304"
    assert env["SHOPIFY_WEBHOOK_SECRET_ID"].startswith(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:storewire/local/shopify-webhook"
    )
    assert [d.name for d in ingest.layer_dirs] == ["storewire"]
    assert [(e.type, e.properties["Path"]) for e in ingest.events] == [
        ("HttpApi", "/webhooks/{source}")
    ]
