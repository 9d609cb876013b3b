"""Kubernetes attribution: a fake kubelet's PodResources answers (over gRPC on a Unix
socket, as the real one serves them), pod labels from a fake API server, a namespace map."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ledger.collect.agent import Agent, Node
from ledger.collect.attribution import Holder, Unattributed
from ledger.collect.config import KubernetesConfig
from ledger.collect.fake_nvml import FakeGpu, FakeNvml
from ledger.collect.gpus import GpuReading, NvmlGpus
from ledger.collect.kubernetes import ApiServerLabels, PodResourcesSource
from ledger.collect.metrics import Metrics
from ledger.collect.spool import Spool
from tests.collect.fake_kubelet import FakeKubelet

GPUS = [GpuReading(f"GPU-{n}", "NVIDIA H100 80GB HBM3", 0, 0) for n in range(4)]
ACME = Holder("kddi", "acme")
CONFIG = KubernetesConfig(namespaces={"team-acme": ACME})


@pytest.fixture
def kubelet(tmp_path):
    with FakeKubelet(tmp_path / "kubelet.sock") as fake:
        yield fake


def source(kubelet, config=CONFIG, labels_of=None) -> PodResourcesSource:
    return PodResourcesSource(config, labels_of=labels_of, target=f"unix://{kubelet.socket}")


def test_a_pod_in_a_mapped_namespace_holds_its_gpus(kubelet):
    kubelet.hold("team-acme", "train-0", "GPU-0", "GPU-1")
    assert source(kubelet).holders(0, GPUS) == {"GPU-0": ACME, "GPU-1": ACME}


def test_idle_gpus_and_other_resources_are_left_out(kubelet):
    kubelet.hold("team-acme", "nic", "GPU-2", resource="example.com/nic")
    assert source(kubelet).holders(0, GPUS) == {}


def test_a_pod_of_an_unmapped_namespace_is_unattributed(kubelet):
    kubelet.hold("somebody", "job", "GPU-0")
    assert source(kubelet).holders(0, GPUS) == {"GPU-0": Unattributed("no_tenant")}


def test_time_sliced_replicas_of_one_gpu_held_by_two_pods_are_shared(kubelet):
    kubelet.hold("team-acme", "a", "GPU-0::0")
    kubelet.hold("team-acme", "b", "GPU-0::1")
    kubelet.hold("team-acme", "c", "GPU-1::0", "GPU-1::1")
    assert source(kubelet).holders(0, GPUS) == {"GPU-0": Unattributed("shared"), "GPU-1": ACME}


def test_a_mig_device_is_no_gpu_on_the_bus(kubelet):
    kubelet.hold("team-acme", "a", "MIG-1234")
    assert source(kubelet).holders(0, GPUS) == {"MIG-1234": Unattributed("unknown_device")}


def test_a_kubelet_that_does_not_answer_raises(tmp_path):
    away = PodResourcesSource(CONFIG, target=f"unix://{tmp_path / 'none.sock'}")
    with pytest.raises(Exception):  # noqa: B017 - grpc.RpcError; the agent counts any failure
        away.holders(0, GPUS)


class FakeApiServer:
    """GET /api/v1/namespaces/N/pods/P with the pods' labels; counts requests."""

    def __init__(self, labels: dict) -> None:
        self.labels, self.requests = labels, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests += 1
                parts = self.path.split("/")
                pod = (parts[4], parts[6])
                if pod not in outer.labels:
                    self.send_error(404)
                    return
                body = json.dumps({"metadata": {"name": pod[1], "labels": outer.labels[pod]}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_pod_labels_name_tenant_and_reseller_read_once_per_pod(kubelet):
    api = FakeApiServer({
        ("team-acme", "labelled"): {"gpuledger.io/tenant": "zeta", "gpuledger.io/reseller": "sakura"},
        ("team-acme", "plain"): {"app": "x"},
        ("team-acme", "bad"): {"gpuledger.io/tenant": "zeta", "gpuledger.io/reseller": "Not A Member"},
    })
    config = KubernetesConfig(tenant_label="gpuledger.io/tenant", reseller_label="gpuledger.io/reseller", namespaces={"team-acme": ACME})
    kubelet.hold("team-acme", "labelled", "GPU-0")
    kubelet.hold("team-acme", "plain", "GPU-1")
    kubelet.hold("team-acme", "bad", "GPU-2")
    kubelet.hold("team-acme", "gone", "GPU-3")
    labels = ApiServerLabels(api.url, token="t", context=None)
    found = source(kubelet, config, labels).holders(0, GPUS)
    assert found == {"GPU-0": Holder("sakura", "zeta"), "GPU-1": ACME, "GPU-2": Unattributed("bad_labels"),
                     "GPU-3": Unattributed("labels_unavailable")}
    asked = api.requests
    source(kubelet, config, labels).holders(1, GPUS)
    assert api.requests == asked + 1  # only the pod whose read failed is asked again
    api.server.shutdown()


def test_the_agent_bills_what_the_kubelet_says_and_counts_the_rest(kubelet, tmp_path):
    kubelet.hold("team-acme", "train", "GPU-a")
    kubelet.hold("team-acme", "x", "GPU-b::0")
    kubelet.hold("team-acme", "y", "GPU-b::1")
    kubelet.hold("team-acme", "z", "MIG-c")
    clock = type("Clock", (), {"now": lambda self: 0.0})()
    nvml = NvmlGpus(FakeNvml((FakeGpu("GPU-a"), FakeGpu("GPU-b")), 0, clock.now))
    nvml.start()
    metrics = Metrics()
    agent = Agent(Node("sakura", "k8s-node", {"*": "H100"}), nvml, source(kubelet), Spool(tmp_path / "s.db"), clock, metrics)
    for second in range(60, 121):
        agent.tick(second)
    events = [json.loads(value) for _, value in agent.spool.take(10)]
    assert [(e["data"]["gpu_uuid"], e["data"]["tenant"], e["data"]["seconds"]) for e in events] == [("GPU-a", "acme", 60)]
    value = metrics.registry.get_sample_value
    assert value("gpuledger_collect_unattributed_seconds_total", {"reason": "shared"}) == 61
    assert value("gpuledger_collect_unattributed_seconds_total", {"reason": "unknown_device"}) == 61
