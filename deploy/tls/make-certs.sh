#!/bin/bash
# A deployment's certificates, with openssl: its own CA, the Kafka broker's certificate
# (a PKCS#12 keystore and its password) and the usage API's (PEM certificate and key).
#
#   deploy/tls/make-certs.sh [--out DIR] [--kafka-host NAME]... [--api-host NAME]... [--days N]
#
#   --out DIR          where the files go (default: deploy/tls/certs, which docker-compose.yml mounts)
#   --kafka-host NAME  a name (or IP address) clients reach the broker by; repeatable.
#                      Always included: kafka (its name inside compose) and localhost. Add
#                      the public name members' producers use (KAFKA_PUBLIC_HOST in
#                      docker-compose.yml, which must be one of these names).
#   --api-host NAME    the same for the API; always included: api (Prometheus scrapes it
#                      so) and localhost.
#   --days N           how long the broker's and API's certificates are valid (default 397)
#
# Files written to DIR:
#   ca.crt             the CA certificate: what every client trusts (GPULEDGER_KAFKA_SSL_CAFILE,
#                      members' producers, API clients, Prometheus); hand it to each member
#   ca.key             the CA's private key (mode 0600): mounted nowhere; keep it offline
#   kafka.p12          the broker's key and certificate chain (PKCS#12)
#   kafka.p12.password the keystore's password (random)
#   api.crt, api.key   the API's certificate chain and key (PEM)
#
# Run again to renew: an existing ca.key is kept, so the new certificates chain to the same
# CA and no client needs a new ca.crt; delete DIR to start a new CA.
#
# Permissions: DIR is 0700, so nobody else on the host reads it; the files compose mounts
# are 0644, because a single mounted file keeps its host mode and the containers read
# them as their own users (Kafka's appuser, the ledger's nobody).
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)/certs"
kafka_hosts=(kafka localhost)
api_hosts=(api localhost)
days=397

usage() { echo "usage: $0 [--out DIR] [--kafka-host NAME]... [--api-host NAME]... [--days N]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?}"; shift 2 ;;
    --kafka-host) kafka_hosts+=("${2:?}"); shift 2 ;;
    --api-host) api_hosts+=("${2:?}"); shift 2 ;;
    --days) days="${2:?}"; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || usage

# subjectAltName of the names given: IP addresses as IP, the rest as DNS names.
alt_names() {
  local names=() name
  for name in "$@"; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
      names+=("IP:$name")
    elif [[ "$name" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
      names+=("DNS:$name")
    else
      echo "$0: not a host name or IP address: $name" >&2
      exit 2
    fi
  done
  local IFS=,
  echo "${names[*]}"
}

# A key (EC P-256) and a certificate signed by the CA, for a TLS server of these names.
issue() {  # file-stem common-name names...
  local stem="$1" cn="$2"
  shift 2
  local san
  san="$(alt_names "$@")"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/$stem.key" -subj "/O=gpuledger/CN=$cn" -out "$out/$stem.csr" 2>/dev/null
  openssl x509 -req -in "$out/$stem.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days "$days" -sha256 -out "$out/$stem.crt" -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=$san") 2>/dev/null
  rm -f "$out/$stem.csr"
}

umask 077
mkdir -p "$out"
chmod 0700 "$out"

if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/ca.key" -out "$out/ca.crt" -days 3650 -sha256 \
    -subj "/O=gpuledger/CN=gpuledger deployment CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

issue kafka "${kafka_hosts[0]}" "${kafka_hosts[@]}"
openssl rand -hex 32 > "$out/kafka.p12.password"
openssl pkcs12 -export -name kafka -in "$out/kafka.crt" -inkey "$out/kafka.key" -certfile "$out/ca.crt" \
  -passout "file:$out/kafka.p12.password" -out "$out/kafka.p12"
rm -f "$out/kafka.key" "$out/kafka.crt"  # only the keystore is used

issue api "${api_hosts[0]}" "${api_hosts[@]}"
cat "$out/ca.crt" >> "$out/api.crt"  # the chain, so clients that hold only ca.crt verify it

chmod 0600 "$out/ca.key"
chmod 0644 "$out/ca.crt" "$out/kafka.p12" "$out/kafka.p12.password" "$out/api.crt" "$out/api.key"
rm -f "$out/ca.srl"
echo "certificates in $out: ca.crt (trust it), kafka.p12 ($(IFS=,; echo "${kafka_hosts[*]}")), api.crt ($(IFS=,; echo "${api_hosts[*]}"))" >&2
