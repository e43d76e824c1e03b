"""The pure domain: money and canonical events. No boto3, no httpx, no Powertools."""
