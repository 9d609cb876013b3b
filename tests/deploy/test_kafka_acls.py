"""Who may write what on Kafka: the ACLs of deploy/kafka/acls.sh, checked offline against
what the code creates and reads.

The plan is the script's own output (`acls.sh plan`, which `apply` feeds to
kafka-acls.sh), the super users come from server.properties as the entrypoint renders
it, and Kafka's rules are modelled in tests/deploy/kafka_acl.py. What each principal
needs comes from the code: the usage topic from the settings (schemas.wire), the members
from the public scenario's catalog, and, from Faust itself (the app of streams.app, built
offline as a worker builds it), the consumer group its aiokafka consumer joins, the
topics its agents read, and the topics Faust creates (its leader assignor's, tables'
changelogs, agents' own topics).

Member topics: SPEC.md ("Who sent it") names them `<usage topic>.<member id>`, as
`schemas.wire.member_topic` does for the API and the workers.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.domain.catalog_file import parse_catalog
from ledger.settings import DEFAULT_TOPIC, Settings, resolve
from schemas.catalog import MemberId
from schemas.wire import USAGE_TOPIC, member_topic
from streams.app import Worker, create_app
from streams.auth import client_options
from streams.publish import new_producer
from streams.topics import METER_GROUP
from tests.deploy.conftest import KAFKA_DIR, ROOT, compose, members, service_environment
from tests.deploy.kafka_acl import CLUSTER, Acl, Authorizer, closure, parse_plan

# The deployment's certificates are made by openssl (deploy/tls/make-certs.sh).
pytestmark = pytest.mark.heavy

SCENARIO_CATALOG = ROOT / "tests" / "scenarios" / "alliance-2026-q3" / "catalog.toml"
MEMBER_ID = re.compile(MemberId.__metadata__[0].pattern)
# A member that joins after the ACLs were applied: the workers and the API must need no
# new ACL for its topic (only its own user and ACL are added).
NEWCOMER = "newcomer-7"
# Each compose service of the ledger, and the Kafka user it connects as.
SERVICE_PRINCIPALS = {"worker": "ledger_worker", "api": "ledger_api", "ingest": "ledger_ingest",
                      "topics": "ledger_admin"}
SUPER_USERS = {"User:kafka_broker", "User:ledger_admin"}


def resolved(service: str, secrets: Path, home: Path) -> Settings:
    """The settings a compose service's `gpuledger` resolves (its environment only)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("GPULEDGER_")]:
            patch.delenv(key)
        for key, value in service_environment(service, secrets).items():
            patch.setenv(key, value)
        return resolve(home=str(home))


@dataclass(frozen=True)
class FaustFacts:
    """What the worker's Faust app does on Kafka, read from Faust's own objects."""

    group: str
    read_topics: frozenset[str]  # agents' topics named literally
    read_patterns: tuple[re.Pattern, ...]  # agents' topic patterns
    created_topics: frozenset[str]  # topics Faust declares (creates if missing) and reads
    changelogs: frozenset[str]  # tables' changelog topics: created, read and written
    producer_needs_idempotent_write: bool


def faust_facts(settings: Settings, data_dir: Path) -> FaustFacts:
    async def unused_store():
        raise AssertionError("the app is only built, never run")

    async def build() -> FaustFacts:
        app = create_app(settings, Worker("acl-check", data_dir, 4), unused_store)
        # The aiokafka consumer and producer Faust makes for a worker (never started).
        consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        producer = app.producer._new_producer()
        try:
            channels = [agent.channel for agent in app.agents.values()]
            created = {topic for channel in channels if channel.internal for topic in channel.topics}
            if not app.conf.topic_disable_leader:
                created.add(app._leader_assignor._leader_topic_name)
            return FaustFacts(
                group=consumer._group_id,
                read_topics=frozenset(topic for channel in channels for topic in channel.topics),
                read_patterns=tuple(re.compile(channel.pattern) if isinstance(channel.pattern, str) else channel.pattern
                                    for channel in channels if getattr(channel, "pattern", None)),
                created_topics=frozenset(created),
                changelogs=frozenset(table.changelog_topic.get_topic_name() for table in app.tables.values()),
                producer_needs_idempotent_write=producer._txn_manager is not None,
            )
        finally:
            await consumer.stop()
            await producer.stop()

    return asyncio.run(build())


def acls_script(command: str) -> list[Acl]:
    """What `acls.sh plan` (or `revoked`) prints, with kafka-setup's environment."""
    environment = {"PATH": os.environ["PATH"], **compose()["services"]["kafka-setup"]["environment"]}
    printed = subprocess.run(["bash", str(KAFKA_DIR / "acls.sh"), command], env=environment,
                             capture_output=True, text=True, check=True)
    return parse_plan(printed.stdout)


@pytest.fixture(scope="module")
def plan() -> list[Acl]:
    return acls_script("plan")


@pytest.fixture(scope="module")
def authorizer(plan, broker_config) -> Authorizer:
    return Authorizer(tuple(plan), frozenset(broker_config["super.users"].split(";")))


@pytest.fixture(scope="module")
def worker_settings(secrets, tmp_path_factory) -> Settings:
    return resolved("worker", secrets, tmp_path_factory.mktemp("worker-home"))


@pytest.fixture(scope="module")
def faust(worker_settings, tmp_path_factory) -> FaustFacts:
    return faust_facts(worker_settings, tmp_path_factory.mktemp("faust"))


@pytest.fixture(scope="module")
def topics(worker_settings) -> dict[str, set[str]]:
    usage = worker_settings.usage_topic
    return {"usage": {usage},
            "members": {member_topic(usage, member) for member in members() + [NEWCOMER]}}


@pytest.fixture(scope="module")
def needs(faust, topics) -> dict[str, set[tuple[str, str, str]]]:
    """principal -> every (operation, resource type, name) it must be allowed."""
    usage_topics = topics["usage"] | topics["members"]
    worker = {("Read", "group", faust.group)}
    worker |= {(op, "topic", t) for t in usage_topics for op in ("Read", "DescribeConfigs")}
    worker |= {("Read", "topic", t) for t in faust.read_topics}
    worker |= {(op, "topic", t) for t in faust.created_topics for op in ("Create", "Read")}
    worker |= {(op, "topic", t) for t in faust.changelogs for op in ("Create", "Read", "Write")}
    if faust.producer_needs_idempotent_write:
        worker.add(("IdempotentWrite", "cluster", CLUSTER))
    result = {
        "User:ledger_worker": worker,
        "User:ledger_api": {("Write", "topic", t) for t in usage_topics},
        "User:ledger_ingest": {("Write", "topic", t) for t in topics["usage"]},
        # `topic ensure` (creates and describes every usage topic); users and ACLs.
        "User:ledger_admin": {(op, "topic", t) for t in usage_topics for op in ("Create", "DescribeConfigs")}
        | {("Alter", "cluster", CLUSTER)},
    }
    for member in members():
        result[f"User:{member}"] = {("Write", "topic", member_topic(next(iter(topics["usage"])), member))}
    return result


@pytest.fixture(scope="module")
def universe(faust, topics) -> list[tuple[str, str]]:
    """Every resource a principal might be allowed: the usage topics, Faust's, and some others."""
    named = topics["usage"] | topics["members"] | faust.read_topics | faust.created_topics | faust.changelogs
    others = {"__consumer_offsets", "__transaction_state", "gpu.usage-other", "other", f"{faust.group}-other"}
    return ([("topic", t) for t in sorted(named | others)]
            + [("group", g) for g in (faust.group, "other-group")]
            + [("cluster", CLUSTER), ("transactional-id", "any")])


def test_the_names_are_the_codes(worker_settings, faust):
    """Given the settings compose gives the workers, then the topic and the group the ACLs
    name are those the code uses."""
    setup = compose()["services"]["kafka-setup"]["environment"]
    assert worker_settings.usage_topic == setup["USAGE_TOPIC"] == USAGE_TOPIC == DEFAULT_TOPIC
    assert faust.group == setup["METER_GROUP"] == METER_GROUP
    catalog = parse_catalog(SCENARIO_CATALOG.read_bytes())
    assert members() == [member.id for member in catalog.members]
    assert faust.created_topics, "Faust's leader assignor declares its topic"


def test_the_worker_reads_what_its_faust_app_subscribes(authorizer, faust, topics):
    for topic in faust.read_topics:
        assert authorizer.allows("User:ledger_worker", "Read", "topic", topic), topic
    for pattern in faust.read_patterns:
        for topic in topics["usage"] | topics["members"]:
            assert pattern.fullmatch(topic), f"{pattern.pattern} misses {topic}"


@pytest.mark.parametrize("principal", ["User:ledger_worker", "User:ledger_api", "User:ledger_ingest",
                                       "User:ledger_admin", *[f"User:{m}" for m in members()]])
def test_each_principal_may_do_what_it_needs(principal, authorizer, needs):
    refused = {need for need in needs[principal] if not authorizer.allows(principal, *need)}
    assert not refused, f"{principal} would be refused {sorted(refused)}"


@pytest.mark.parametrize("principal", ["User:ledger_worker", "User:ledger_api", "User:ledger_ingest",
                                       *[f"User:{m}" for m in members()]])
def test_and_nothing_more(principal, authorizer, needs, universe):
    extra = authorizer.allowed(principal, universe) - closure(needs[principal])
    assert not extra, f"{principal} may do more than it needs: {sorted(extra)}"


def test_no_worker_writes_a_usage_topic(authorizer, topics):
    for topic in topics["usage"] | topics["members"]:
        assert not authorizer.allows("User:ledger_worker", "Write", "topic", topic), topic


def test_a_member_writes_its_own_topic_only(authorizer, topics):
    (usage,) = topics["usage"]
    for member in members():
        principal = f"User:{member}"
        assert authorizer.allows(principal, "Write", "topic", member_topic(usage, member))
        for topic in topics["usage"] | topics["members"] - {member_topic(usage, member)}:
            assert not authorizer.allows(principal, "Write", "topic", topic), (member, topic)
            assert not authorizer.allows(principal, "Read", "topic", topic), (member, topic)
        assert not authorizer.allows(principal, "Read", "topic", member_topic(usage, member))
        assert not authorizer.allows(principal, "Create", "topic", member_topic(usage, member))


def test_nobody_is_anonymous_and_only_the_broker_and_admin_are_super_users(plan, authorizer):
    assert set(authorizer.super_users) == SUPER_USERS
    principals = {acl.principal for acl in plan}
    assert principals == {"User:ledger_worker", "User:ledger_api", "User:ledger_ingest",
                          *[f"User:{m}" for m in members()]}
    for principal in principals | SUPER_USERS:
        assert principal not in ("User:ANONYMOUS", "User:*")
    # No member id can name a service's user ("_" is in no member id).
    for principal in SUPER_USERS | {f"User:{p}" for p in SERVICE_PRINCIPALS.values()}:
        assert not MEMBER_ID.fullmatch(principal.removeprefix("User:")), principal


def test_every_listener_is_sasl_ssl_and_what_no_acl_allows_is_refused(broker_config):
    protocols = dict(entry.split(":") for entry in broker_config["listener.security.protocol.map"].split(","))
    listeners = [entry.split("://")[0] for entry in broker_config["listeners"].split(",")]
    advertised = [entry.split("://")[0] for entry in broker_config["advertised.listeners"].split(",")]
    assert set(protocols) == set(listeners) and set(advertised) <= set(listeners)
    assert set(protocols.values()) == {"SASL_SSL"}
    assert broker_config["inter.broker.listener.name"] in listeners
    assert broker_config["controller.listener.names"] in listeners
    assert broker_config["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert broker_config["allow.everyone.if.no.acl.found"] == "false"
    assert broker_config["auto.create.topics.enable"] == "false"
    assert broker_config["log.message.timestamp.type"] == "LogAppendTime"
    assert broker_config["ssl.client.auth"] == "none" and broker_config["ssl.keystore.type"] == "PKCS12"
    for listener in listeners:
        mechanisms = broker_config[f"listener.name.{listener.lower()}.sasl.enabled.mechanisms"]
        expected = "PLAIN" if listener == broker_config["controller.listener.names"] else "SCRAM-SHA-512"
        assert mechanisms == expected, listener
    # The controller accepts one user, the broker itself.
    controller = broker_config["listener.name.controller.plain.sasl.jaas.config"]
    assert re.findall(r"\buser_(\w+)=", controller) == ["kafka_broker"]
    assert 'username="kafka_broker"' in controller


def test_the_controller_and_internal_listeners_are_not_published(broker_config):
    kafka = compose()["services"]["kafka"]
    published = {port.split(":")[-1] for port in kafka["ports"]}
    ports = {entry.split("://")[0]: entry.rsplit(":", 1)[1] for entry in broker_config["listeners"].split(",")}
    assert published == {ports["EXTERNAL"]}


@pytest.mark.parametrize("service, principal", SERVICE_PRINCIPALS.items())
def test_every_client_service_connects_as_its_own_user_over_tls(service, principal, secrets, tmp_path):
    definition = compose()["services"][service]
    settings = resolved(service, secrets, tmp_path)
    auth = settings.kafka_auth
    assert (auth.security_protocol, auth.sasl_mechanism, auth.username) == ("SASL_SSL", "SCRAM-SHA-512", principal)
    assert "tls_ca" in definition["secrets"]
    password_secret = Path(definition["environment"]["GPULEDGER_KAFKA_SASL_PASSWORD_FILE"]).name
    assert password_secret in definition["secrets"]
    assert auth.password == (secrets / password_secret).read_text().strip()
    assert client_options(auth)["ssl_context"].get_ca_certs(), "the deployment's CA is trusted"
    # The user acls.sh (or, for the admin, the entrypoint) creates with that password.
    if principal == "ledger_admin":
        script = (KAFKA_DIR / "kafka-entrypoint.sh").read_text()
        assert 'admin="$(secret kafka_admin_password)"' in script and "name=ledger_admin," in script
    else:
        script = (KAFKA_DIR / "acls.sh").read_text()
        assert f'add_user {principal} "$SECRETS/{password_secret}"' in script
        assert password_secret in compose()["services"]["kafka-setup"]["secrets"]


def test_the_api_and_ingest_producers_need_only_write(worker_settings):
    """No idempotent or transactional producer: no cluster or transactional-id ACL."""

    async def producer_state():
        producer = new_producer("kafka:9092", client_options(worker_settings.kafka_auth))
        try:
            return producer._txn_manager
        finally:
            await producer.stop()

    assert asyncio.run(producer_state()) is None


def test_an_upgraded_broker_keeps_no_grant_of_the_earlier_layout(plan, topics):
    """Given a broker set up by the earlier acls.sh (members wrote the usage topic; one
    user, ledger, read and wrote it), then apply removes those grants and no plan line is
    among them."""
    revoked = acls_script("revoked")
    (usage,) = topics["usage"]
    assert {(acl.principal, acl.name) for acl in revoked} >= {
        *[(f"User:{member}", usage) for member in members()], ("User:ledger", usage)}
    assert not set(revoked) & set(plan)
    assert "User:ledger" not in {acl.principal for acl in plan}


def test_a_member_not_in_the_plan_may_do_nothing(authorizer, universe):
    assert not authorizer.allowed(f"User:{NEWCOMER}", universe)
    assert not authorizer.allowed("User:ANONYMOUS", universe)


def test_the_acl_model_refuses_what_kafka_refuses():
    """The model itself: prefixes, literals, implications, super users."""
    acls = (Acl("User:a", "topic", "prefixed", "gpu.usage.", frozenset({"Write"})),
            Acl("User:a", "topic", "literal", "gpu.usage", frozenset({"Read"})))
    model = Authorizer(acls, frozenset({"User:root"}))
    assert model.allows("User:a", "Write", "topic", "gpu.usage.x")
    assert model.allows("User:a", "Describe", "topic", "gpu.usage.x")
    assert not model.allows("User:a", "Write", "topic", "gpu.usage")
    assert not model.allows("User:a", "Write", "topic", "gpu.usagex")
    assert not model.allows("User:a", "Read", "topic", "gpu.usage.x")
    assert not model.allows("User:a", "DescribeConfigs", "topic", "gpu.usage")
    assert not model.allows("User:a", "Read", "group", "gpu.usage")
    assert not model.allows("User:b", "Read", "topic", "gpu.usage")
    assert model.allows("User:root", "Alter", "cluster", CLUSTER)
    with pytest.raises(AssertionError):
        parse_plan("User:a topic literal t Steal")
