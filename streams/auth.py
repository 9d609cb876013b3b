"""How the ledger's Kafka clients authenticate: the settings' KafkaAuth as client options.

Production brokers give each member a SASL/SCRAM user that may only write to the usage
topic, and the ledger a user that may read it (docs/operations.md); the embedded broker
needs nothing. SASL_SSL uses the system's trusted certificates.
"""

from __future__ import annotations

import ssl

import faust

from ledger.domain.errors import LedgerError
from ledger.settings import KafkaAuth

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def client_options(auth: KafkaAuth) -> dict:
    """Keyword arguments for aiokafka's producer, consumer and admin clients."""
    if auth.security_protocol not in PROTOCOLS:
        raise LedgerError(f"GPULEDGER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    options: dict = {"security_protocol": auth.security_protocol}
    if auth.security_protocol.endswith("SSL"):
        options["ssl_context"] = ssl.create_default_context()
    if auth.security_protocol.startswith("SASL"):
        if not auth.username or auth.password is None:
            raise LedgerError(
                "SASL needs GPULEDGER_KAFKA_SASL_USERNAME and GPULEDGER_KAFKA_SASL_PASSWORD_FILE"
            )
        options.update(sasl_mechanism=auth.sasl_mechanism, sasl_plain_username=auth.username,
                       sasl_plain_password=auth.password)
    return options


def faust_credentials(auth: KafkaAuth):
    """Faust's broker_credentials for the same settings (None: plaintext)."""
    options = client_options(auth)
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=auth.username, password=auth.password, mechanism=auth.sasl_mechanism,
            ssl_context=options.get("ssl_context"),
        )
    return options.get("ssl_context")
