"""Adapters behind the ports: each takes its boto3 client in the constructor."""
