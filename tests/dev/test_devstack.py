"""The development stack against real processes: Tansu, PostgreSQL and plain children.

Homes live under a fresh 0755 folder in /tmp: when the suite runs as root, PostgreSQL
runs as user nobody, who cannot enter pytest's own 0700 tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ledger.dev import DevStackError, Stack, free_port, postgres_bin_dir, tansu_binary
from ledger.dev import stack as devstack
from ledger.dev.processes import port_is_free


def _make_world_enterable_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="gpuledger-devstack-", dir="/tmp"))
    folder.chmod(0o755)
    return folder


def _tear_down(home: Path) -> None:
    """Stop whatever the stack under home still runs, then delete its folder."""
    stack = Stack(home)
    try:
        stack.down()
    finally:
        # A last resort that only touches processes this test recorded.
        for entry in stack.status():
            if entry["running"]:
                os.kill(entry["pid"], signal.SIGKILL)
        shutil.rmtree(home.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def infra_home() -> Iterator[Path]:
    home = _make_world_enterable_folder() / "home"
    try:
        yield home
    finally:
        _tear_down(home)


@pytest.fixture(scope="module")
def infra(infra_home: Path) -> Stack:
    stack = Stack(infra_home)
    stack.start_broker()
    stack.start_postgres(durable=False)
    return stack


@pytest.fixture
def home() -> Iterator[Path]:
    home = _make_world_enterable_folder() / "home"
    try:
        yield home
    finally:
        _tear_down(home)


async def _kafka_round_trip(bootstrap: str) -> bytes:
    topic = f"devstack-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"metered", key=b"gpu-0")
    finally:
        await producer.stop()
    # No consumer group: assigning the partition avoids the broker's slow JoinGroup.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        record = await asyncio.wait_for(consumer.getone(), 15)
        return record.value
    finally:
        await consumer.stop()


async def _select(database_url: str, query: str) -> object:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def test_binaries_are_found() -> None:
    assert tansu_binary().is_file()
    assert (postgres_bin_dir() / "pg_ctl").is_file()


@pytest.mark.infra
def test_status_shows_broker_and_postgres_running(infra: Stack) -> None:
    # A fresh Stack, as a later CLI invocation would see it.
    entries = {entry["name"]: entry for entry in Stack(infra.home).status()}
    assert entries["broker"]["running"] and entries["broker"]["role"] == "broker"
    assert entries["postgres"]["running"] and entries["postgres"]["role"] == "postgres"
    settings = infra.settings()
    assert settings["kafka_bootstrap"] == f"127.0.0.1:{entries['broker']['port']}"
    assert settings["database_url"] == (
        f"postgresql://postgres@127.0.0.1:{entries['postgres']['port']}/gpuledger"
    )


@pytest.mark.infra
def test_kafka_round_trip(infra: Stack) -> None:
    assert asyncio.run(_kafka_round_trip(infra.settings()["kafka_bootstrap"])) == b"metered"


@pytest.mark.infra
def test_database_url_answers(infra: Stack) -> None:
    assert asyncio.run(_select(infra.settings()["database_url"], "SELECT 1")) == 1


@pytest.mark.infra
def test_starting_again_keeps_the_running_components(infra: Stack) -> None:
    broker, postgres = infra.component("broker"), infra.component("postgres")
    assert infra.start_broker()["pid"] == broker["pid"]
    assert infra.start_postgres(durable=False)["pid"] == postgres["pid"]


@pytest.mark.infra
def test_killed_broker_comes_back_on_the_same_port(infra: Stack) -> None:
    before = infra.component("broker")
    os.kill(before["pid"], signal.SIGKILL)
    _wait_until(lambda: not Stack(infra.home).is_running("broker"))

    after = Stack(infra.home).start_broker()

    assert after["port"] == before["port"] and after["pid"] != before["pid"]
    assert infra.is_running("broker")
    # Memory storage: the topics are gone, but a new round trip works on the same address.
    assert asyncio.run(_kafka_round_trip(infra.settings()["kafka_bootstrap"])) == b"metered"


@pytest.mark.infra
def test_killed_postgres_comes_back_on_the_same_port_with_its_data(infra: Stack) -> None:
    database_url = infra.settings()["database_url"]
    asyncio.run(_select(database_url, "CREATE TABLE IF NOT EXISTS survivor (id int)"))
    # durable=False means synchronous_commit=off: a crash loses commits whose WAL is still
    # in shared memory. A checkpoint writes it out.
    asyncio.run(_select(database_url, "CHECKPOINT"))
    before = infra.component("postgres")
    # A SIGKILLed postmaster leaves postmaster.pid behind, naming a zombie or no process.
    os.kill(before["pid"], signal.SIGKILL)
    _wait_until(lambda: not infra.is_running("postgres"))

    after = Stack(infra.home).start_postgres(durable=False)

    assert after["port"] == before["port"] and after["pid"] != before["pid"]
    assert infra.settings()["database_url"] == database_url
    assert asyncio.run(_select(database_url, "SELECT to_regclass('survivor')::text")) == "survivor"


@pytest.mark.infra
def test_unrecorded_postgres_is_adopted_not_started_twice(infra: Stack) -> None:
    # As after a lost stack.json: PostgreSQL still runs for the same data folder.
    saved = infra.state_file.read_text()
    running = infra.component("postgres")
    infra.state_file.unlink()
    try:
        adopted = Stack(infra.home).start_postgres(durable=False)
    finally:
        infra.state_file.write_text(saved)
    assert (adopted["pid"], adopted["port"]) == (running["pid"], running["port"])


@pytest.mark.infra
def test_explicit_port_in_use_is_a_clear_error(infra: Stack) -> None:
    taken = infra.component("postgres")["port"]
    other = Stack(infra.home.parent / "other-home")
    with pytest.raises(DevStackError, match=f"port {taken} .* already in use"):
        other.start_broker(port=taken)
    assert other.status() == []


@pytest.mark.infra
def test_down_stops_everything_and_keeps_the_database(infra: Stack) -> None:
    pids = [entry["pid"] for entry in infra.status()]
    port = infra.component("postgres")["port"]

    infra.down()

    assert infra.status() == []
    assert infra.settings() == {"kafka_bootstrap": None, "database_url": None}
    for pid in pids:
        assert not _process_exists(pid)
    assert (infra.home / "pg" / "data" / "PG_VERSION").is_file()

    # `dev up` after `down`: PostgreSQL comes back on its old port, with its tables.
    infra.start_postgres(durable=False)
    assert infra.component("postgres")["port"] == port
    database_url = infra.settings()["database_url"]
    assert asyncio.run(_select(database_url, "SELECT to_regclass('survivor')::text")) == "survivor"
    infra.down()
    assert infra.status() == []


READY_THEN_SLEEP = (
    "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); print('ready', flush=True); "
    "time.sleep(120)"
)


@pytest.mark.heavy  # starts processes
def test_start_process_waits_for_its_ready_file(home: Path) -> None:
    stack = Stack(home)
    ready = home / "worker-1.ready"

    record = stack.start_process(
        "worker-1", "worker", [sys.executable, "-c", READY_THEN_SLEEP, str(ready)], ready_file=ready
    )

    assert ready.exists()
    assert Stack(home).status() == [
        {
            "name": "worker-1",
            "role": "worker",
            "pid": record["pid"],
            "port": None,
            "log": str(home / "logs" / "worker-1.log"),
            "running": True,
            "restarts": 0,
            "last_exit": None,
        }
    ]
    with pytest.raises(DevStackError, match="already running"):
        stack.start_process("worker-1", "worker", [sys.executable, "-c", "pass"])
    stack.stop("worker-1")
    assert not _process_exists(record["pid"])
    assert stack.component("worker-1") is None


@pytest.mark.heavy  # starts processes
def test_start_process_that_exits_early_names_its_log(home: Path) -> None:
    stack = Stack(home)
    crash = "import sys; print('cannot reach kafka', flush=True); sys.exit(3)"
    log = home / "logs" / "worker-1.log"

    with pytest.raises(DevStackError) as raised:
        stack.start_process(
            "worker-1", "worker", [sys.executable, "-c", crash], ready_file=home / "never"
        )

    message = str(raised.value)
    assert message.splitlines()[0] == (
        f"worker-1 exited (code 3) before it was ready; see {log}"
    )
    assert "cannot reach kafka" in message
    assert stack.status() == []


@pytest.mark.heavy  # starts processes
def test_down_stops_workers_and_api(home: Path) -> None:
    stack = Stack(home)
    pids = []
    for name, role in (("worker-1", "worker"), ("worker-2", "worker"), ("api", "api")):
        ready = home / f"{name}.ready"
        argv = [sys.executable, "-c", READY_THEN_SLEEP, str(ready)]
        pids.append(stack.start_process(name, role, argv, ready_file=ready)["pid"])

    stack.down()

    assert stack.status() == []
    assert not any(_process_exists(pid) for pid in pids)


IGNORE_TERM_WITH_A_CHILD = (
    "import pathlib, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "pathlib.Path(sys.argv[1]).write_text(str(child.pid)); time.sleep(120)"
)


@pytest.mark.heavy  # starts processes
def test_stop_kills_what_ignores_sigterm_with_its_children(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "PROCESS_STOP_GRACE_SECONDS", 0.5)
    stack = Stack(home)
    ready = home / "stubborn.ready"
    argv = [sys.executable, "-c", IGNORE_TERM_WITH_A_CHILD, str(ready)]
    record = stack.start_process("stubborn", "worker", argv, ready_file=ready)
    _wait_until(lambda: ready.read_text().strip() != "")
    child_pid = int(ready.read_text())

    stack.stop("stubborn")

    assert not _process_exists(record["pid"])
    _wait_until(lambda: not _process_exists(child_pid))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as nobody")
def test_home_that_nobody_cannot_enter_is_refused(home: Path) -> None:
    closed = home.parent / "closed"
    closed.mkdir(mode=0o700)
    stack = Stack(closed / "home")

    with pytest.raises(DevStackError, match=f"cannot enter {closed} .*chmod o\\+x {closed}"):
        stack.start_postgres(durable=False)
    assert stack.status() == []


def test_a_free_port_is_one_a_server_can_take_and_is_not_free_while_taken() -> None:
    port = free_port()
    assert 1024 <= port <= 65535 and port_is_free(port)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_is_free(port)
        assert free_port() != port
    assert port_is_free(port)


def _process_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
