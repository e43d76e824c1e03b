from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from storewire.domain.money import CurrencyMismatch, Money, currency_exponent, total


def test_given_a_shopify_amount_string_when_parsed_then_the_amount_is_exact() -> None:
    money = Money.parse("199.00", "USD")

    assert money.amount == Decimal("199.00")
    assert money.currency == "USD"
    assert money.model_dump(mode="json") == {"amount": "199.00", "currency": "USD"}


def test_given_amounts_written_differently_when_parsed_then_they_normalise_to_the_minor_unit() -> (
    None
):
    assert Money.parse("199", "usd") == Money.parse("199.00", "USD")
    assert str(Money.parse("1990.00", "JPY").amount) == "1990"
    assert str(Money.parse("1.5", "KWD").amount) == "1.500"


def test_given_tenths_of_cents_when_added_then_there_is_no_float_drift() -> None:
    amounts = [Money.parse("0.10", "USD")] * 3

    assert total(amounts, "USD") == Money.parse("0.30", "USD")


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("199.00", "USD", 19900), ("1990", "JPY", 1990), ("12.345", "KWD", 12345), ("0.01", "EUR", 1)],
)
def test_given_a_currency_exponent_when_converted_to_minor_units_then_it_is_exact(
    amount: str, currency: str, minor: int
) -> None:
    money = Money.parse(amount, currency)

    assert money.to_minor_units() == minor
    assert Money.from_minor_units(minor, currency) == money


@given(
    units=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "CLF"]),
)
def test_given_any_minor_units_when_round_tripped_then_nothing_is_lost(
    units: int, currency: str
) -> None:
    assert Money.from_minor_units(units, currency).to_minor_units() == units


def test_given_a_float_when_used_as_an_amount_then_it_is_rejected() -> None:
    with pytest.raises(ValidationError, match="never floats"):
        Money(amount=19.99, currency="USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": 19.99, "currency": "USD"})
    with pytest.raises(TypeError):
        Money.from_minor_units(1999.0, "USD")  # type: ignore[arg-type]


def test_given_more_precision_than_the_currency_has_when_parsed_then_it_is_rejected() -> None:
    with pytest.raises(ValidationError, match="more precision"):
        Money.parse("0.005", "USD")
    with pytest.raises(ValidationError, match="more precision"):
        Money.parse("100.5", "JPY")


def test_given_garbage_when_parsed_then_it_is_rejected() -> None:
    for bad in ("abc", "", "NaN", "Infinity"):
        with pytest.raises(ValidationError):
            Money.parse(bad, "USD")
    with pytest.raises(ValidationError):
        Money.parse("1.00", "US")


def test_given_two_currencies_when_added_then_it_fails() -> None:
    with pytest.raises(CurrencyMismatch):
        _ = Money.parse("1", "USD") + Money.parse("1", "EUR")


def test_given_money_when_multiplied_by_a_quantity_then_the_line_total_is_exact() -> None:
    assert Money.parse("29.00", "USD") * 2 == Money.parse("58.00", "USD")
    with pytest.raises(TypeError):
        _ = Money.parse("29.00", "USD") * 1.5  # type: ignore[operator]


def test_given_iso_4217_when_asked_for_exponents_then_the_exceptions_are_known() -> None:
    assert [currency_exponent(c) for c in ("USD", "JPY", "KWD", "BHD", "KRW")] == [2, 0, 3, 3, 0]
