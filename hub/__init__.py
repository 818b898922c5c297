"""HomeGuard Hub: the kernel (events, bus, config, store, incident lifecycle) and the composition root."""

__version__ = "0.1.0"
