"""Device drivers: transports and ecosystem adapters that turn device traffic into hub events."""
