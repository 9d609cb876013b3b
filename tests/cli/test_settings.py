"""Settings: secrets come from files, never from a URL on a command line."""

from __future__ import annotations

import pytest

from ledger.domain.errors import LedgerError
from ledger.settings import ApiLimits, KafkaAuth, resolve, with_password
from streams.auth import client_options, faust_credentials


def test_a_database_password_file_fills_the_urls_password(tmp_path, monkeypatch):
    secret = tmp_path / "app_db_password"
    secret.write_text("p@ss:w/rd\n")
    monkeypatch.setenv("GPULEDGER_DATABASE_URL", "postgresql://gpuledger_app@db:5432/gpuledger")
    monkeypatch.setenv("GPULEDGER_DATABASE_PASSWORD_FILE", str(secret))
    settings = resolve(home=str(tmp_path))
    assert settings.database_url == "postgresql://gpuledger_app:p%40ss%3Aw%2Frd@db:5432/gpuledger"
    with pytest.raises(LedgerError, match="needs a user"):
        with_password("postgresql://db/gpuledger", "x")
    monkeypatch.setenv("GPULEDGER_DATABASE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(LedgerError, match="cannot read"):
        resolve(home=str(tmp_path))


def test_kafka_sasl_settings_become_client_options_and_the_password_is_never_shown(tmp_path, monkeypatch):
    secret = tmp_path / "kafka_ledger_password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("GPULEDGER_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("GPULEDGER_KAFKA_SASL_USERNAME", "ledger")
    monkeypatch.setenv("GPULEDGER_KAFKA_SASL_PASSWORD_FILE", str(secret))
    auth = resolve(home=str(tmp_path)).kafka_auth
    assert "s3cret" not in repr(auth)
    assert client_options(auth) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger", "sasl_plain_password": "s3cret",
    }
    assert faust_credentials(auth).username == "ledger"
    assert client_options(KafkaAuth()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaAuth()) is None
    with pytest.raises(LedgerError, match="SASL needs"):
        client_options(KafkaAuth("SASL_SSL"))
    with pytest.raises(LedgerError, match="must be one of"):
        client_options(KafkaAuth("TLS"))


def test_kafka_over_tls_takes_its_ca_file_from_the_settings(tmp_path, monkeypatch):
    """Given GPULEDGER_KAFKA_SSL_CAFILE, then the clients trust that file's CA only, and a
    file that holds no certificate stops the command in one line (tests/deploy/test_tls.py
    makes real handshakes with such a CA)."""
    secret = tmp_path / "kafka_worker_password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("GPULEDGER_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("GPULEDGER_KAFKA_SASL_USERNAME", "ledger_worker")
    monkeypatch.setenv("GPULEDGER_KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("GPULEDGER_KAFKA_SSL_CAFILE", str(tmp_path / "ca.crt"))
    auth = resolve(home=str(tmp_path)).kafka_auth
    assert auth.ssl_cafile == str(tmp_path / "ca.crt")
    with pytest.raises(LedgerError, match=r"GPULEDGER_KAFKA_SSL_CAFILE: cannot read certificates from .*ca\.crt"):
        client_options(auth)
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    with pytest.raises(LedgerError, match="NO_CERTIFICATE_OR_CRL_FOUND"):
        faust_credentials(auth)
    monkeypatch.delenv("GPULEDGER_KAFKA_SSL_CAFILE")
    assert resolve(home=str(tmp_path)).kafka_auth.ssl_cafile is None


def test_the_apis_limits_come_from_the_environment_each_with_its_default(tmp_path, monkeypatch):
    assert resolve(home=str(tmp_path)).api_limits == ApiLimits()
    monkeypatch.setenv("GPULEDGER_API_RATE_PER_SECOND", "2.5")
    monkeypatch.setenv("GPULEDGER_API_DOCUMENT_PROCESSES", "4")
    limits = resolve(home=str(tmp_path)).api_limits
    assert (limits.rate_per_second, limits.document_processes, limits.rate_burst) == (2.5, 4, ApiLimits.rate_burst)
    for variable, value in (("GPULEDGER_API_RATE_BURST", "many"), ("GPULEDGER_API_RATE_PER_SECOND", "nan"),
                            ("GPULEDGER_API_QUERY_PROCESSES", "0")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(LedgerError, match=variable):
            resolve(home=str(tmp_path))
        monkeypatch.delenv(variable)
