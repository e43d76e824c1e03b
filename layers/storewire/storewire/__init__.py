"""Storewire's shared code, shipped as the Lambda layer: domain, sources, ports, adapters."""
