"""Cloud sync: the signed dispatch API client (`client`), the outbox drainer, the updates poller,
the heartbeat and telemetry rollups, run together by `service.SyncService`; and the reference
dispatch server (`sync.server`) with the OpenAPI document of the contract.

`sync` imports the kernel (`hub`), never `drivers`, `rules` or `models`; only the composition root
(`hub.daemon`, `hub.cli`) imports `sync`.
"""
