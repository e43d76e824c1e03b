"""Exact money: a `Decimal` amount with an ISO 4217 currency. Never a float.

Amounts are normalised to the currency's minor-unit exponent (USD 2, JPY 0, KWD 3), so
`Money.parse("199", "USD")` and `Money.parse("199.00", "USD")` are equal and serialise the
same way (`{"amount": "199.00", "currency": "USD"}`). An amount finer than the currency's
minor unit (`"0.005"` USD) is rejected rather than rounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ISO 4217 currencies whose minor unit is not 2 digits; every other code has exponent 2.
_EXPONENT_EXCEPTIONS: dict[str, int] = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def currency_exponent(currency: str) -> int:
    """The number of minor-unit digits of an ISO 4217 currency (2 unless listed otherwise)."""
    return _EXPONENT_EXCEPTIONS.get(currency.upper(), 2)


class CurrencyMismatch(ValueError):
    """Arithmetic or comparison between two different currencies."""


class Money(BaseModel):
    """An exact amount of one currency. Immutable; arithmetic only within one currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal = Field(description="Decimal amount, serialised as a string, e.g. '199.00'")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. 'USD'")

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float | bool):
            raise ValueError("money amounts must be strings, ints or Decimals, never floats")
        if isinstance(value, str):
            try:
                Decimal(value.strip())
            except InvalidOperation:
                raise ValueError(f"not a decimal amount: {value!r}") from None
            return value.strip()
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exact_in_minor_units(self) -> Self:
        if not self.amount.is_finite():
            raise ValueError("money amounts must be finite")
        quantum = Decimal(1).scaleb(-currency_exponent(self.currency))
        normalised = self.amount.quantize(quantum)
        if normalised != self.amount:
            raise ValueError(
                f"{self.amount} has more precision than {self.currency} minor units allow"
            )
        # Frozen model: normalise the representation once, at construction.
        object.__setattr__(self, "amount", normalised)
        return self

    @classmethod
    def parse(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Money from a storefront amount string such as Shopify's ``"199.00"``."""
        return cls(amount=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        """Money from integer minor units (cents, yen, fils): ``(19900, "USD")`` is 199.00."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError("minor units must be an int")
        return cls(amount=Decimal(units).scaleb(-currency_exponent(currency)), currency=currency)

    def to_minor_units(self) -> int:
        """The amount as integer minor units, exact (no rounding ever happens)."""
        return int(self.amount.scaleb(currency_exponent(self.currency)))

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} do not mix")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __mul__(self, quantity: int) -> Money:
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError("money can only be multiplied by an int quantity")
        return Money(amount=self.amount * quantity, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def total(amounts: Iterable[Money], currency: str) -> Money:
    """The exact sum of `amounts`, all in `currency` (zero when empty)."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
