"""The hybridrl.v1 message contract in Python: generated messages and the rules around them.

``hybridrl.proto.v1`` holds the modules generated from ``protos/hybridrl/v1/*.proto``
(``common_pb2``, ``events_pb2``, ``rollout_pb2`` and ``rollout_pb2_grpc``, ...); regenerate
them with ``python protos/generate.py``. ``hybridrl.proto.schema`` holds the schema version
and the checks consumers run after decoding; ``hybridrl.proto.tensor_codec`` converts the
``Tensor`` message to and from numpy. Services translate messages at their edges with these;
``hybridrl.algo`` never imports this package.
"""
