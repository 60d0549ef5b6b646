"""Generated protobuf messages and gRPC stubs of the hybridrl.v1 contract.

Do not edit: the sources are protos/hybridrl/v1/*.proto; regenerate with
``python protos/generate.py``.
"""
