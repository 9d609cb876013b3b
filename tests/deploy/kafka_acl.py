"""Kafka's authorization rules, as the broker applies them, for checking an ACL plan offline.

A model of Apache Kafka's StandardAuthorizer (KRaft), for ALLOW ACLs only (the plan has no
DENY): a super user may do anything; anyone else may do an operation on a resource when an
ACL of theirs names that operation (or one that implies it) on a pattern that matches the
resource. Patterns: LITERAL matches the name exactly (`*` matches every name), PREFIXED
matches names that start with it. Implications (Kafka's AclEntry): READ, WRITE, DELETE and
ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL implies every operation.
Operation and resource names are those of kafka-acls.sh (`--operation DescribeConfigs`,
`--topic`, `--resource-pattern-type prefixed`).
"""

from __future__ import annotations

from dataclasses import dataclass

OPERATIONS = (
    "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "DescribeConfigs",
    "AlterConfigs", "IdempotentWrite", "CreateTokens", "DescribeTokens", "All",
)
RESOURCE_TYPES = ("topic", "group", "cluster", "transactional-id", "delegation-token", "user")
PATTERN_TYPES = ("literal", "prefixed")
IMPLIED_BY = {"Describe": {"Read", "Write", "Delete", "Alter"}, "DescribeConfigs": {"AlterConfigs"}}
CLUSTER = "kafka-cluster"  # the one cluster resource's name


@dataclass(frozen=True)
class Acl:
    principal: str
    resource_type: str
    pattern_type: str
    name: str
    operations: frozenset[str]

    def matches(self, resource_type: str, name: str) -> bool:
        if resource_type != self.resource_type:
            return False
        if self.pattern_type == "prefixed":
            return name.startswith(self.name)
        return self.name in ("*", name)


def parse_plan(text: str) -> list[Acl]:
    """The lines of `acls.sh plan`: PRINCIPAL RESOURCE-TYPE PATTERN-TYPE NAME OPERATIONS."""
    acls = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        assert len(fields) == 5, f"not a plan line: {line!r}"
        principal, resource_type, pattern_type, name, operations = fields
        assert principal.startswith("User:"), line
        assert resource_type in RESOURCE_TYPES, line
        assert pattern_type in PATTERN_TYPES, line
        ops = frozenset(operations.split(","))
        assert ops <= set(OPERATIONS), f"unknown operation in {line!r}"
        acls.append(Acl(principal, resource_type, pattern_type, name, ops))
    return acls


def implied(operations: set[str]) -> set[str]:
    """The operations these grant, implications included."""
    if "All" in operations:
        return set(OPERATIONS)
    granted = set(operations)
    for operation, by in IMPLIED_BY.items():
        if granted & by:
            granted.add(operation)
    return granted


@dataclass(frozen=True)
class Authorizer:
    acls: tuple[Acl, ...]
    super_users: frozenset[str]

    def allows(self, principal: str, operation: str, resource_type: str, name: str) -> bool:
        if principal in self.super_users:
            return True
        return any(
            acl.principal in (principal, "User:*")
            and acl.matches(resource_type, name)
            and operation in implied(set(acl.operations))
            for acl in self.acls
        )

    def allowed(self, principal: str, universe: list[tuple[str, str]]) -> set[tuple[str, str, str]]:
        """Every (operation, resource type, name) of the universe's resources the
        principal may do."""
        return {
            (operation, resource_type, name)
            for resource_type, name in universe
            for operation in OPERATIONS
            if self.allows(principal, operation, resource_type, name)
        }


def closure(needs: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """What granting exactly these needs lets a principal do (implied operations added)."""
    return {(operation, resource_type, name)
            for needed, resource_type, name in needs
            for operation in implied({needed})}
