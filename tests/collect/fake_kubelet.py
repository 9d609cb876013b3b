"""A fake kubelet: the PodResources v1 `List` method on a Unix socket, answering whatever
pods the test sets (`pods`), with grpcio's server, as the real kubelet serves it."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc

from ledger.collect.podresources.api_pb2 import (
    ContainerDevices,
    ContainerResources,
    ListPodResourcesRequest,
    ListPodResourcesResponse,
    PodResources,
)


class FakeKubelet:
    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.pods: list[PodResources] = []
        self.calls = 0
        handler = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
            "List": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=ListPodResourcesRequest.FromString,
                response_serializer=ListPodResourcesResponse.SerializeToString,
            ),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{socket}")

    def _list(self, request, context) -> ListPodResourcesResponse:
        self.calls += 1
        return ListPodResourcesResponse(pod_resources=self.pods)

    def hold(self, namespace: str, pod: str, *device_ids: str, resource: str = "nvidia.com/gpu") -> None:
        self.pods.append(PodResources(name=pod, namespace=namespace, containers=[
            ContainerResources(name="main", devices=[ContainerDevices(resource_name=resource, device_ids=list(device_ids))]),
        ]))

    def __enter__(self) -> FakeKubelet:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(grace=None)
