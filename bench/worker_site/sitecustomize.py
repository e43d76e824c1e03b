"""Loaded by the emulator's worker processes during `make bench` (bench/site is on their
PYTHONPATH): tags every AWS request a function makes with its name in the User-Agent
(`app/<name>`), so the moto-side counter can tell which function made it."""

import os

_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
if _name and "AWS_SDK_UA_APP_ID" not in os.environ:
    os.environ["AWS_SDK_UA_APP_ID"] = _name[-50:]
