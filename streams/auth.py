"""How the ledger's Kafka clients authenticate: the settings' KafkaAuth as client options.

Production brokers take SASL/SCRAM over TLS only, with one user per member (who may write
its own topic) and one per service of the ledger (docs/operations.md, "Who may write
what"); the embedded broker needs nothing. Over TLS the broker's certificate and name are
verified, against the CA file of GPULEDGER_KAFKA_SSL_CAFILE when it is set (a deployment's
own CA), else against the system's trusted certificates.
"""

from __future__ import annotations

import ssl

import faust

from ledger.domain.errors import LedgerError
from ledger.settings import KafkaAuth

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def tls_context(cafile: str | None) -> ssl.SSLContext:
    """A client context that verifies the broker's certificate chain and host name."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except OSError as exc:  # ssl.SSLError is one: a file without a certificate
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise LedgerError(f"GPULEDGER_KAFKA_SSL_CAFILE: cannot read certificates from {cafile}: {reason}") from exc


def client_options(auth: KafkaAuth) -> dict:
    """Keyword arguments for aiokafka's producer, consumer and admin clients."""
    if auth.security_protocol not in PROTOCOLS:
        raise LedgerError(f"GPULEDGER_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    options: dict = {"security_protocol": auth.security_protocol}
    if auth.security_protocol.endswith("SSL"):
        options["ssl_context"] = tls_context(auth.ssl_cafile)
    elif auth.ssl_cafile:
        # A CA file with a plaintext protocol would look like TLS and be none.
        raise LedgerError("GPULEDGER_KAFKA_SSL_CAFILE needs GPULEDGER_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL")
    if auth.security_protocol.startswith("SASL"):
        if not auth.username or auth.password is None:
            raise LedgerError(
                "SASL needs GPULEDGER_KAFKA_SASL_USERNAME and GPULEDGER_KAFKA_SASL_PASSWORD_FILE"
            )
        options.update(sasl_mechanism=auth.sasl_mechanism, sasl_plain_username=auth.username,
                       sasl_plain_password=auth.password)
    return options


def faust_credentials(auth: KafkaAuth):
    """Faust's broker_credentials for the same settings (None: plaintext). Faust hands
    them to the aiokafka consumer and producer it makes."""
    options = client_options(auth)
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=auth.username, password=auth.password, mechanism=auth.sasl_mechanism,
            ssl_context=options.get("ssl_context"),
        )
    return options.get("ssl_context")
