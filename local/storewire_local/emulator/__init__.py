"""The Docker-free local emulator: moto + the template's graph + warm Lambda workers.

Kept import-light: worker processes import ``storewire_local.emulator.worker`` and must not
pay for moto. ``Emulator`` and ``InvocationError`` are loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Emulator
    from .runner import InvocationError

__all__ = ["Emulator", "InvocationError"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .core import Emulator

        return Emulator
    if name == "InvocationError":
        from .runner import InvocationError

        return InvocationError
    raise AttributeError(name)
