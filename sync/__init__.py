"""Cloud sync (outbox drainer, signed client, updates poller, reference server).

Not built yet: the store already writes an outbox row with every incident change, in the same
transaction, so nothing is lost while this package is empty. Tracked as issue 3.
"""
