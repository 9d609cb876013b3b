#!/bin/bash
# Kafka's users and ACLs: who may write what (docs/operations.md, "Who may write what").
#
#   acls.sh plan     print the ACLs, one line per principal and resource:
#                      PRINCIPAL RESOURCE-TYPE PATTERN-TYPE NAME OPERATION[,OPERATION...]
#   acls.sh apply    (the default) as the admin: create every SCRAM user, add every ACL of
#                    the plan, remove what earlier versions of this file granted (below);
#                    run again after adding a member (users and ACLs that exist are left
#                    as they are, passwords are set again)
#   acls.sh revoked  print the ACLs that apply removes, in the plan's format
#
# Environment: MEMBERS (the catalog's member ids, separated by spaces), USAGE_TOPIC,
# METER_GROUP; for apply also BOOTSTRAP (default kafka:9092) and GPULEDGER_SECRETS (default
# /run/secrets), which holds the services' passwords (kafka_<service>_password), the
# members' (kafka-members/<member id>) and the CA certificate (tls_ca).
#
# The principals, and what each may do (nothing else: the broker refuses what no ACL allows):
#   <member id>    WRITE its own topic USAGE_TOPIC.<member id>: events on it come from
#                  that member (SPEC.md, "Who sent it"); it reads nothing, not even its own
#   ledger_worker  READ the usage topic and every member topic (those by prefix, so a new
#                  member's topic needs no new ACL), and their configs (a worker checks
#                  LogAppendTime at start); use the consumer group METER_GROUP; CREATE and
#                  READ the topic Faust's leader assignor keeps, METER_GROUP-__assignor-__leader
#                  (Faust names it after the app, whose id is the group). No WRITE anywhere.
#   ledger_api     WRITE the usage topic (admin tokens' events) and every member topic (a
#                  member token's events go to that member's topic)
#   ledger_ingest  WRITE the usage topic: the operator's `gpuledger ingest` and `simulate`
#   ledger_admin   a super user (server.properties): these users and ACLs, and the topics
#                  (`gpuledger topic ensure`)
# Service principals have "_" in their names, which no member id can have, so no member's
# user can ever be a service's.
set -euo pipefail

: "${USAGE_TOPIC:?}" "${METER_GROUP:?}"
MEMBERS="${MEMBERS:-}"
SECRETS="${GPULEDGER_SECRETS:-/run/secrets}"
BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
KAFKA=/opt/kafka/bin
LEADER_TOPIC="$METER_GROUP-__assignor-__leader"

check_names() {
  [[ "$USAGE_TOPIC" =~ ^[A-Za-z0-9._-]{1,200}$ ]] || { echo "USAGE_TOPIC is not a topic name: $USAGE_TOPIC" >&2; exit 2; }
  [[ "$METER_GROUP" =~ ^[A-Za-z0-9._-]{1,200}$ ]] || { echo "METER_GROUP is not a group name: $METER_GROUP" >&2; exit 2; }
  local member
  for member in $MEMBERS; do
    # SPEC.md's member ids; a member's topic is USAGE_TOPIC.<member id>.
    [[ "$member" =~ ^[a-z][a-z0-9-]{1,31}$ ]] || { echo "not a member id: $member" >&2; exit 2; }
  done
}

plan() {
  local member
  echo "User:ledger_worker topic literal $USAGE_TOPIC Read,Describe,DescribeConfigs"
  echo "User:ledger_worker topic prefixed $USAGE_TOPIC. Read,Describe,DescribeConfigs"
  echo "User:ledger_worker group literal $METER_GROUP Read"
  echo "User:ledger_worker topic literal $LEADER_TOPIC Create,Read,Describe"
  echo "User:ledger_api topic literal $USAGE_TOPIC Write,Describe"
  echo "User:ledger_api topic prefixed $USAGE_TOPIC. Write,Describe"
  echo "User:ledger_ingest topic literal $USAGE_TOPIC Write,Describe"
  for member in $MEMBERS; do
    echo "User:$member topic literal $USAGE_TOPIC.$member Write,Describe"
  done
}

# What earlier versions of this file granted, and a broker they set up still holds: every
# member could write the usage topic itself (so an event there had no sender), and one
# user, ledger, read and wrote it for both the workers and the API. apply removes these
# ACLs and that user, so an upgraded broker keeps none of it.
LEGACY_USER=ledger
revoked() {
  local member
  for member in $MEMBERS; do
    echo "User:$member topic literal $USAGE_TOPIC Write,Describe"
  done
  echo "User:$LEGACY_USER topic literal $USAGE_TOPIC Read,Write,Describe"
  echo "User:$LEGACY_USER group literal $METER_GROUP Read"
}

acls() {  # --add|--remove, then the lines of plan or revoked on fd 3
  local action="$1" principal type pattern name operations operation
  while read -r -u 3 principal type pattern name operations; do
    local flags=()
    IFS=, read -r -a operations <<< "$operations"
    for operation in "${operations[@]}"; do
      flags+=(--operation "$operation")
    done
    "$KAFKA/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" "$action" --force \
      --allow-principal "$principal" "${flags[@]}" "--$type" "$name" --resource-pattern-type "$pattern" </dev/null
  done
}

# The admin's client settings: SASL_SSL, trusting the deployment's CA.
admin_config() {
  local password
  password="$(cat "$SECRETS/kafka_admin_password")"
  cat <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ledger_admin" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/tls_ca
CONF
}

add_user() {  # name password-file
  local password
  password="$(cat "$2")"
  [ -n "$password" ] || { echo "$2 is empty" >&2; exit 2; }
  "$KAFKA/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
    --entity-type users --entity-name "$1" --add-config "SCRAM-SHA-512=[password=$password]" </dev/null
}

apply() {
  local member
  ADMIN_CONFIG="$(mktemp)"
  trap 'rm -f "$ADMIN_CONFIG"' EXIT
  chmod 600 "$ADMIN_CONFIG"
  admin_config > "$ADMIN_CONFIG"
  until "$KAFKA/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --list >/dev/null 2>&1; do
    sleep 1
  done
  for member in $MEMBERS; do  # every password is there before anything changes
    [ -s "$SECRETS/kafka-members/$member" ] || { echo "no password for member $member: $SECRETS/kafka-members/$member" >&2; exit 2; }
  done
  add_user ledger_worker "$SECRETS/kafka_worker_password"
  add_user ledger_api "$SECRETS/kafka_api_password"
  add_user ledger_ingest "$SECRETS/kafka_ingest_password"
  for member in $MEMBERS; do
    add_user "$member" "$SECRETS/kafka-members/$member"
  done
  acls --add 3< <(plan)
  acls --remove 3< <(revoked)
  if [[ " $MEMBERS " != *" $LEGACY_USER "* ]] && "$KAFKA/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --describe \
      --entity-type users --entity-name "$LEGACY_USER" </dev/null | grep -q SCRAM-SHA-512; then
    "$KAFKA/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
      --entity-type users --entity-name "$LEGACY_USER" --delete-config SCRAM-SHA-512 </dev/null
  fi
}

check_names
case "${1:-apply}" in
  plan) plan ;;
  revoked) revoked ;;
  apply) apply ;;
  *) echo "usage: $0 [plan|revoked|apply]" >&2; exit 2 ;;
esac
