#!/bin/bash
# Kafka (KRaft) with SASL/SCRAM: format the log once with the admin's SCRAM user (which
# runs deploy/kafka/acls.sh), then start the broker. The image's own launcher writes
# server.properties from the KAFKA_* variables.
set -euo pipefail
ADMIN_PASSWORD="$(cat /run/secrets/kafka_admin_password)"
export KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM__SHA__512_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"${ADMIN_PASSWORD}\";"
CLUSTER_ID="${CLUSTER_ID:-$(/opt/kafka/bin/kafka-storage.sh random-uuid)}"
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /etc/kafka/docker/configure
  /opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" \
    -c /opt/kafka/config/server.properties \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${ADMIN_PASSWORD}]"
fi
exec /etc/kafka/docker/run
