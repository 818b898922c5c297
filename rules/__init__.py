"""Offline emergency protocols: pure decisions on readings, commands and incident reports out."""
