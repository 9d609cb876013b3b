"""Attribution on a Kubernetes node: the kubelet's PodResources API says which pod holds
which GPU; pod labels or a namespace map say whose tenant that pod is.

Each tick the agent calls `List` on the kubelet's socket (gRPC over a Unix socket, read
only, `/var/lib/kubelet/pod-resources/kubelet.sock`). For every container device of a
configured resource (`nvidia.com/gpu`), the device id is a GPU UUID (the NVIDIA device
plugin's default); a time-sliced replica `GPU-...::N` names its GPU before the `::`.
Then, per GPU:
- one pod holds it: its tenant and reseller are the pod's labels (`tenant_label`,
  `reseller_label`, read once per pod from the API server) when it has both, else its
  namespace's entry of `[kubernetes.namespaces]`, else it is unattributed (`no_tenant`);
- several pods hold it at once (time-slicing): unattributed (`shared`): SPEC.md bills a
  GPU-second to one attribution, and splitting it is not the agent's to decide;
- a device id that is no GPU on the bus (a MIG instance, a GPU NVML cannot read) is
  unattributed (`unknown_device`), counted, never billed.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import grpc

from ledger.collect.attribution import Holder, Unattributed, checked_holder
from ledger.collect.config import KubernetesConfig
from ledger.collect.gpus import GpuReading
from ledger.collect.podresources.api_pb2 import ListPodResourcesRequest, ListPodResourcesResponse
from ledger.domain.errors import InputError

LIST_METHOD = "/v1.PodResourcesLister/List"
LIST_TIMEOUT_SECONDS = 2.0
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

Pod = tuple[str, str]  # (namespace, name)
LabelsOf = Callable[[str, str], dict[str, str] | None]


def gpu_of_device(device_id: str) -> str:
    """The GPU UUID a device id names (a time-sliced replica `GPU-x::3` names `GPU-x`)."""
    return device_id.split("::", 1)[0]


def assignments(response: ListPodResourcesResponse, resources: Sequence[str]) -> dict[str, set[Pod]]:
    """GPU UUID -> the pods that hold it, from a List answer."""
    held: dict[str, set[Pod]] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if devices.resource_name not in resources:
                    continue
                for device_id in devices.device_ids:
                    held.setdefault(gpu_of_device(device_id), set()).add((pod.namespace, pod.name))
    return held


def holder_of(pod: Pod, config: KubernetesConfig, labels_of: LabelsOf | None) -> Holder | Unattributed:
    namespace, name = pod
    if labels_of is not None and config.tenant_label and config.reseller_label:
        labels = labels_of(namespace, name)
        if labels is None:
            return Unattributed("labels_unavailable")
        tenant, reseller = labels.get(config.tenant_label), labels.get(config.reseller_label)
        if tenant is not None and reseller is not None:
            try:
                return checked_holder(reseller, tenant, None, f"pod {namespace}/{name}")
            except InputError:
                return Unattributed("bad_labels")
    holder = config.namespaces.get(namespace)
    return holder if holder is not None else Unattributed("no_tenant")


def holders_of(
    held: dict[str, set[Pod]], gpus: Sequence[GpuReading], config: KubernetesConfig, labels_of: LabelsOf | None,
) -> dict[str, Holder | Unattributed]:
    on_bus = {gpu.uuid for gpu in gpus}
    found: dict[str, Holder | Unattributed] = {}
    for uuid, pods in held.items():
        if uuid not in on_bus:
            found[uuid] = Unattributed("unknown_device")
        elif len(pods) > 1:
            found[uuid] = Unattributed("shared")
        else:
            found[uuid] = holder_of(next(iter(pods)), config, labels_of)
    return found


class PodResourcesSource:
    """`AttributionSource` from the kubelet's PodResources API (and pod labels, if configured)."""

    def __init__(self, config: KubernetesConfig, labels_of: LabelsOf | None = None, target: str | None = None) -> None:
        self.config = config
        self.channel = grpc.insecure_channel(target or f"unix://{config.socket}")
        self.list = self.channel.unary_unary(
            LIST_METHOD, request_serializer=ListPodResourcesRequest.SerializeToString,
            response_deserializer=ListPodResourcesResponse.FromString,
        )
        if labels_of is None and config.tenant_label and config.reseller_label:
            labels_of = ApiServerLabels.in_cluster()
        self.labels_of = labels_of

    def holders(self, second: int, gpus: Sequence[GpuReading]) -> dict[str, Holder | Unattributed]:
        response = self.list(ListPodResourcesRequest(), timeout=LIST_TIMEOUT_SECONDS)
        held = assignments(response, self.config.resources)
        if isinstance(self.labels_of, ApiServerLabels):
            self.labels_of.keep_only({pod for pods in held.values() for pod in pods})
        return holders_of(held, gpus, self.config, self.labels_of)

    def close(self) -> None:
        self.channel.close()


class ApiServerLabels:
    """A pod's labels from the Kubernetes API server (`GET /api/v1/namespaces/N/pods/P`),
    read once per pod and kept while the kubelet lists it. A failed read is not kept: the
    pod's seconds are `labels_unavailable` until a read succeeds."""

    def __init__(self, base_url: str, token: str | None, context: ssl.SSLContext | None, timeout: float = 2.0) -> None:
        self.base_url, self.token, self.context, self.timeout = base_url.rstrip("/"), token, context, timeout
        self.cache: dict[Pod, dict[str, str]] = {}

    @classmethod
    def in_cluster(cls) -> ApiServerLabels:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise InputError("pod labels need the API server: KUBERNETES_SERVICE_HOST is not set (not in a pod?)")
        try:
            token = (SERVICE_ACCOUNT / "token").read_text().strip()
        except OSError as exc:
            raise InputError(f"pod labels need the service account token: {exc}") from exc
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        return cls(f"https://{host}:{port}", token, context)

    def __call__(self, namespace: str, name: str) -> dict[str, str] | None:
        pod = (namespace, name)
        if pod not in self.cache:
            url = f"{self.base_url}/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"} if self.token else {})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:
                    document = json.load(answer)
            except (OSError, ValueError):
                return None
            self.cache[pod] = dict(document.get("metadata", {}).get("labels") or {})
        return self.cache[pod]

    def keep_only(self, pods: set[Pod]) -> None:
        for gone in set(self.cache) - pods:
            del self.cache[gone]
