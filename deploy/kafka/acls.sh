#!/bin/bash
# Users and ACLs of the usage topic (run once, as the admin, by the kafka-setup service).
#
#   each member (MEMBERS): may WRITE and DESCRIBE the usage topic; may not READ it, so no
#                          member sees another's usage; may not create or delete topics.
#   ledger:                may READ and DESCRIBE the usage topic and use the workers'
#                          consumer group; may WRITE it too (the API's HTTP ingest).
#
# Each user's password is the secret kafka_<user>_password.
set -euo pipefail
KAFKA=/opt/kafka/bin
BOOTSTRAP=kafka:9092
ADMIN_CONFIG=$(mktemp)
cat > "$ADMIN_CONFIG" <<CONF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat /run/secrets/kafka_admin_password)";
CONF
until "$KAFKA/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --list >/dev/null 2>&1; do
  sleep 1
done

add_user() {  # name
  "$KAFKA/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --alter \
    --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$(cat "/run/secrets/kafka_$1_password")]"
}
acl() {  # principal operation... -- resource options
  "$KAFKA/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add "$@"
}

"$KAFKA/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --create \
  --if-not-exists --topic "$USAGE_TOPIC" --partitions 4 --replication-factor 1 \
  --config message.timestamp.type=LogAppendTime --config max.message.bytes=17825792

add_user ledger
acl --allow-principal User:ledger --operation Read --operation Write --operation Describe --topic "$USAGE_TOPIC"
acl --allow-principal User:ledger --operation Read --group "$METER_GROUP"

for member in $MEMBERS; do
  add_user "$member"
  acl --allow-principal "User:$member" --operation Write --operation Describe --topic "$USAGE_TOPIC"
done
