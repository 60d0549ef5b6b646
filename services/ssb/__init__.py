"""The SSB store service: scored responses in, GRPO batches and MPO pairs out over gRPC.

A thin adapter over ``hybridrl.replay``: ``scored_events`` translates ``ScoredEvent``s,
``worker`` consumes ``hybridrl.scored`` and makes the shard durable (snapshots, offsets
committed with them), ``servicer`` serves ``BufferService`` (``Sample``, ``Stats``,
``Snapshot``), ``main`` builds and runs it all (``python -m hybridrl serve ssb --config FILE``).
"""
