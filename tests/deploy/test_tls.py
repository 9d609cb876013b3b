"""TLS: the certificates deploy/tls/make-certs.sh makes, the Kafka clients' trust in them
(GPULEDGER_KAFKA_SSL_CAFILE, through aiokafka's and Faust's options), and the usage API
serving HTTPS with them. Real handshakes on the loopback; no broker is needed."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from ledger.domain.errors import LedgerError
from ledger.http.server import server_options
from ledger.settings import KafkaAuth, Settings
from streams.app import Worker, _faust_app
from streams.auth import client_options, faust_credentials
from tests.deploy.conftest import ROOT, compose, make_certs

# Certificates made by openssl, servers and clients in other processes.
pytestmark = pytest.mark.heavy


def names(certificate: x509.Certificate) -> set[str]:
    alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(value) for value in alternative.get_values_for_type(x509.DNSName)} | {
        str(value) for value in alternative.get_values_for_type(x509.IPAddress)}


def broker_pem(certs: Path, out: Path) -> tuple[Path, Path]:
    """The broker's certificate and key out of its keystore, for a Python TLS server."""
    password = (certs / "kafka.p12.password").read_bytes().strip()
    key, certificate, chain = pkcs12.load_key_and_certificates((certs / "kafka.p12").read_bytes(), password)
    assert key is not None and certificate is not None and chain, "key, certificate and the CA"
    cert_file, key_file = out / "kafka.crt", out / "kafka.key"
    cert_file.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_file, key_file


def handshake(server_cert: Path, server_key: Path, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake on the loopback, the client checking the server as `hostname`."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(server_cert, server_key)

    async def run() -> None:
        server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=hostname)
            writer.close()
        finally:
            server.close()

    asyncio.run(run())


def sasl_ssl(certs: Path) -> KafkaAuth:
    return KafkaAuth("SASL_SSL", "SCRAM-SHA-512", "ledger_worker", "pw", str(certs / "ca.crt"))


def test_make_certs_makes_a_ca_a_broker_keystore_and_the_apis_certificate(certs):
    ca = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    api = x509.load_pem_x509_certificates((certs / "api.crt").read_bytes())
    assert api[-1] == ca, "the API's chain ends with the CA"
    assert names(api[0]) == {"api", "localhost", "127.0.0.1"}
    password = (certs / "kafka.p12.password").read_bytes().strip()
    _, broker, _ = pkcs12.load_key_and_certificates((certs / "kafka.p12").read_bytes(), password)
    assert names(broker) == {"kafka", "localhost"}
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / "api.crt")],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert (certs.stat().st_mode & 0o777) == 0o700 and ((certs / "ca.key").stat().st_mode & 0o777) == 0o600
    # What compose mounts is there, under the names it mounts.
    for secret in compose()["secrets"].values():
        if secret["file"].startswith("./deploy/tls/certs/"):
            assert (certs / Path(secret["file"]).name).is_file(), secret["file"]


def test_running_it_again_renews_under_the_same_ca(tmp_path):
    out = tmp_path / "certs"
    make_certs(out)
    ca, api = (out / "ca.crt").read_bytes(), (out / "api.crt").read_bytes()
    make_certs(out, "--kafka-host", "kafka.alliance.example")
    assert (out / "ca.crt").read_bytes() == ca and (out / "api.crt").read_bytes() != api
    with pytest.raises(subprocess.CalledProcessError):
        make_certs(out, "--api-host", "not a name")


def test_a_kafka_client_trusts_the_deployments_ca_and_checks_the_brokers_name(certs, tmp_path):
    cert, key = broker_pem(certs, tmp_path)
    options = client_options(sasl_ssl(certs))
    assert options["security_protocol"] == "SASL_SSL"
    handshake(cert, key, options["ssl_context"], "kafka")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, key, client_options(sasl_ssl(certs))["ssl_context"], "elsewhere.example")
    # Without the CA file, the system's CAs do not know the deployment's broker.
    system = KafkaAuth("SASL_SSL", "SCRAM-SHA-512", "ledger_worker", "pw")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, key, client_options(system)["ssl_context"], "kafka")


def test_faust_gives_the_workers_kafka_clients_the_same_trust(certs, tmp_path):
    cert, key = broker_pem(certs, tmp_path)
    settings = Settings(home=tmp_path, database_url=None, kafka_bootstrap="kafka:9092", kafka_auth=sasl_ssl(certs))
    assert faust_credentials(settings.kafka_auth).protocol.value == "SASL_SSL"

    async def clients():
        app = _faust_app(settings, Worker("tls-check", tmp_path / "faust", 4))
        consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        producer = app.producer._new_producer()
        await consumer.stop()
        await producer.stop()
        return consumer._client, producer.client

    for client in asyncio.run(clients()):
        assert client._security_protocol == "SASL_SSL" and client._sasl_plain_username == "ledger_worker"
        handshake(cert, key, client._ssl_context, "kafka")


def test_a_ca_file_is_refused_when_it_cannot_be_used(tmp_path):
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    with pytest.raises(LedgerError, match="cannot read certificates"):
        client_options(KafkaAuth("SASL_SSL", "SCRAM-SHA-512", "u", "p", str(tmp_path / "empty.pem")))
    with pytest.raises(LedgerError, match="No such file"):
        client_options(KafkaAuth("SSL", ssl_cafile=str(tmp_path / "missing.pem")))
    with pytest.raises(LedgerError, match="needs GPULEDGER_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL"):
        client_options(KafkaAuth("SASL_PLAINTEXT", "SCRAM-SHA-512", "u", "p", str(tmp_path / "empty.pem")))


async def hello(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_api_serves_https_with_its_certificate(certs):
    port = free_port()
    options = server_options("127.0.0.1", port, str(certs / "api.crt"), str(certs / "api.key"))
    server = uvicorn.Server(uvicorn.Config(hello, lifespan="off", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        trusted = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        answer = httpx.get(f"https://127.0.0.1:{port}/metrics", verify=trusted)
        assert (answer.status_code, answer.text) == (200, "hello")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/metrics")  # no plain HTTP on that port
    finally:
        server.should_exit = True
        thread.join(10)


def test_tls_for_the_api_needs_a_certificate_and_its_own_key(certs, tmp_path):
    assert "ssl_certfile" not in server_options("0.0.0.0", 8080)
    with pytest.raises(LedgerError, match="both --tls-cert and --tls-key"):
        server_options("0.0.0.0", 8443, str(certs / "api.crt"), None)
    other = tmp_path / "other"
    make_certs(other)
    with pytest.raises(LedgerError, match="cannot use"):
        server_options("0.0.0.0", 8443, str(certs / "api.crt"), str(other / "api.key"))
    # The command refuses it in one line, before it connects to anything.
    refused = subprocess.run([sys.executable, "-m", "ledger.cli", "api", "--tls-cert", str(certs / "api.crt")],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "gpuledger: error: TLS needs both --tls-cert and --tls-key"
