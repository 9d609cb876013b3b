#!/bin/bash
# Kafka (KRaft) with SASL_SSL on every listener: render server.properties with the
# secrets, format the log once with the two SCRAM users that must exist before anything
# else can log in (the broker's own, and the admin who runs acls.sh), then run the broker.
#
#   kafka-entrypoint.sh                  render, format if new, run
#   kafka-entrypoint.sh --render-only    render and stop (tests/deploy reads the result)
#
# Environment: KAFKA_PUBLIC_HOST (the name members reach the broker by; in the broker's
# certificate), GPULEDGER_SECRETS (default /run/secrets), KAFKA_TEMPLATE, KAFKA_CONFIG.
set -euo pipefail

SECRETS="${GPULEDGER_SECRETS:-/run/secrets}"
TEMPLATE="${KAFKA_TEMPLATE:-/opt/gpuledger/server.properties}"
CONFIG="${KAFKA_CONFIG:-/opt/kafka/config/gpuledger.properties}"
PUBLIC_HOST="${KAFKA_PUBLIC_HOST:-localhost}"
KAFKA=/opt/kafka/bin

# A secret's value. Passwords go into a properties file and JAAS strings, so they are
# limited to characters neither quotes nor escapes (`openssl rand -hex 32` makes one).
secret() {
  local value
  value="$(cat "$SECRETS/$1")"
  if [[ ! "$value" =~ ^[A-Za-z0-9._~+/=-]{16,}$ ]]; then
    echo "$SECRETS/$1: a password is 16 or more of A-Z a-z 0-9 . _ ~ + / = -" >&2
    exit 2
  fi
  printf '%s' "$value"
}

render() {
  if [[ ! "$PUBLIC_HOST" =~ ^[A-Za-z0-9.-]+$ ]]; then
    echo "KAFKA_PUBLIC_HOST is not a host name: $PUBLIC_HOST" >&2
    exit 2
  fi
  local broker keystore
  broker="$(secret kafka_broker_password)"
  keystore="$(secret kafka_tls_keystore_password)"
  local scram=org.apache.kafka.common.security.scram.ScramLoginModule
  local plain=org.apache.kafka.common.security.plain.PlainLoginModule
  (
    umask 077
    {
      sed "s/@KAFKA_PUBLIC_HOST@/$PUBLIC_HOST/g" "$TEMPLATE"
      echo
      echo "# Appended by kafka-entrypoint.sh from the secrets."
      echo "ssl.keystore.password=$keystore"
      # The broker's login to the other brokers (SCRAM) and to the controller (PLAIN,
      # where user_kafka_broker is the only user the controller accepts).
      echo "listener.name.internal.scram-sha-512.sasl.jaas.config=$scram required username=\"kafka_broker\" password=\"$broker\";"
      echo "listener.name.external.scram-sha-512.sasl.jaas.config=$scram required;"
      echo "listener.name.controller.plain.sasl.jaas.config=$plain required username=\"kafka_broker\" password=\"$broker\" user_kafka_broker=\"$broker\";"
    } > "$CONFIG"
  )
}

render
if [ "${1:-}" = "--render-only" ]; then
  exit 0
fi

if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  broker="$(secret kafka_broker_password)"
  admin="$(secret kafka_admin_password)"
  cluster_id="${CLUSTER_ID:-$("$KAFKA/kafka-storage.sh" random-uuid)}"
  "$KAFKA/kafka-storage.sh" format --ignore-formatted -c "$CONFIG" -t "$cluster_id" \
    --add-scram "SCRAM-SHA-512=[name=kafka_broker,password=$broker]" \
    --add-scram "SCRAM-SHA-512=[name=ledger_admin,password=$admin]"
  unset broker admin
fi
exec "$KAFKA/kafka-server-start.sh" "$CONFIG"
