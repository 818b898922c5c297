"""MQTT: the connection service and one adapter per device ecosystem."""
