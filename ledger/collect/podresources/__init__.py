"""The kubelet's PodResources API v1 (api.proto, the part the agent reads) and its
generated messages (api_pb2.py, `python -m grpc_tools.protoc`; see api.proto)."""
