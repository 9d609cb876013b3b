"""SPEC.md, "Catalog (TOML)": the file's shape and the all-or-nothing loading rules.

Given a catalog already loaded (and maybe closed books), when a file is parsed and
merged, then it is added whole, or refused whole with a `CatalogError`.
"""

from __future__ import annotations

import json

import pytest

from ledger.domain.catalog import (
    AgreementVersion,
    Catalog,
    Member,
    PriceVersion,
    Sku,
)
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.errors import CatalogError, LedgerError
from tests.factories import (
    agreement,
    catalog_text,
    instant,
    load,
    new_ledger,
    price,
    send,
    usage_event,
)

SPEC_EXAMPLE = b"""
currency = "JPY"               # the only currency, for now
timezone = "Asia/Tokyo"        # settlement periods are calendar months here (default)
tax_rate_percent = 10          # consumption tax on every invoice (default 10)
acceptance_horizon_days = 35   # how late usage may arrive (default 35)
require_registered_gpus = true # check 7 below (default false)

[[members]]
id = "kddi"
name = "KDDI"
invoice_registration = "T7123456789012"   # optional; "T" + a 13-digit corporate number

[[skus]]
id = "H200"
description = "NVIDIA H200 141GB"

[[retail_prices]]              # what a reseller charges its tenants; key (reseller, sku)
reseller = "kddi"
sku = "H200"
yen_per_gpu_hour = "780"       # decimal string, at most 4 fractional digits, > 0
effective_from = "2026-01-01T00:00:00+09:00"

[[agreements]]                 # what a reseller owes a provider; key (reseller, provider, sku)
reseller = "kddi"
provider = "sakura"
sku = "H200"
effective_from = "2026-01-01T00:00:00+09:00"
wholesale_yen_per_gpu_hour = "520"   # exactly one of these two
# provider_share_bps = 7000          # basis points of the line's exact, unfloored
#                                    # retail amount; 0..10000

[[gpus]]                       # a provider's GPU; see "GPU registry"
uuid = "GPU-5f1c0b9e-..."      # as gpu_uuid in events: 1-128 characters in 0x21-0x7E
provider = "sakura"
sku = "H200"
region = "jp-ishikari"         # ^[a-z][a-z0-9-]{1,31}$
registered_from = "2026-01-01T00:00:00+09:00"
# retired_from = "2026-12-01T00:00:00+09:00"   # optional, exclusive, > registered_from

[[grants]]                     # credits a member funds for a tenant; see "Credits"
id = "poc-acme-2026"           # ^[a-z0-9][a-z0-9._-]{0,63}$, unique
funder = "sakura"              # a member: pays for what the grant covers
reseller = "kddi"              # the tenant's reseller (may be the funder)
tenant = "acme"                # as tenant in events
amount_yen = 500000            # integer > 0
skus = ["H200", "B200"]        # optional, non-empty; default: every SKU
first_period = "2026-10"       # the service periods it covers, inclusive
last_period = "2026-12"
"""

BASE = catalog_text(
    price("kddi", "H200", "780"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
    agreement("kddi", "highreso", "H200", share_bps=7000),
)
END_OF_SEPTEMBER = instant("2026-10-01T00:00:00+09:00")


def merged(*texts: str | bytes, closed_before: int | None = None) -> Catalog:
    """The catalog after loading the texts in turn; the books are closed before the last."""
    catalog = Catalog()
    for index, text in enumerate(texts):
        data = text if isinstance(text, bytes) else text.encode()
        catalog = catalog.merge(
            parse_catalog(data), closed_before if index == len(texts) - 1 else None
        )
    return catalog


def refused(*texts: str | bytes, closed_before: int | None = None) -> str:
    """The error message of loading the texts in turn (the last one must be refused)."""
    with pytest.raises(CatalogError) as caught:
        merged(*texts, closed_before=closed_before)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


# -- The example of SPEC.md and the defaults ----------------------------------------------


def top_level_settings(catalog) -> tuple:
    return (catalog.currency, catalog.timezone, catalog.tax_rate_percent, catalog.acceptance_horizon_days)


# SPEC.md's example names member sakura and SKU B200 without defining them, which its own
# load rules refuse; with both defined it loads.
SPEC_EXAMPLE_COMPLETE = SPEC_EXAMPLE + (
    b'\n[[members]]\nid = "sakura"\nname = "Sakura Internet"\n'
    b'\n[[skus]]\nid = "B200"\ndescription = "NVIDIA B200"\n'
)


def test_given_the_example_of_spec_then_its_undefined_sku_is_refused_and_it_loads_once_defined():
    with pytest.raises(CatalogError, match="unknown member 'sakura'"):
        merged(SPEC_EXAMPLE)
    with pytest.raises(CatalogError, match="SKU 'B200' is not in the catalog"):
        merged(SPEC_EXAMPLE + b'\n[[members]]\nid = "sakura"\nname = "Sakura Internet"\n')
    catalog = merged(SPEC_EXAMPLE_COMPLETE)
    assert top_level_settings(catalog) == ("JPY", "Asia/Tokyo", 10, 35)
    assert catalog.require_registered_gpus is True
    assert catalog.members["kddi"] == Member("kddi", "KDDI", "T7123456789012")
    assert set(catalog.gpus) == {"GPU-5f1c0b9e-..."} and catalog.gpus["GPU-5f1c0b9e-..."].region == "jp-ishikari"
    assert catalog.grants["poc-acme-2026"].skus == frozenset({"H200", "B200"})
    assert catalog.members["sakura"] == Member("sakura", "Sakura Internet", None)
    assert catalog.skus["H200"] == Sku("H200", "NVIDIA H200 141GB")
    start = instant("2025-12-31T15:00:00Z")
    assert catalog.prices == {("kddi", "H200"): (PriceVersion(start, 7_800_000),)}
    assert catalog.agreements == {
        ("kddi", "sakura", "H200"): (AgreementVersion(start, 5_200_000, None),)
    }


def test_given_a_file_without_top_level_settings_then_the_defaults_apply():
    catalog = merged(BASE)
    assert top_level_settings(catalog) == ("JPY", "Asia/Tokyo", 10, 35)


# -- Loads add; identical reloads change nothing ------------------------------------------


def test_given_a_catalog_when_the_same_file_is_loaded_again_then_nothing_changes():
    once = merged(BASE)
    assert once.merge(parse_catalog(BASE.encode()), None) == once
    assert merged(SPEC_EXAMPLE_COMPLETE, SPEC_EXAMPLE_COMPLETE) == merged(SPEC_EXAMPLE_COMPLETE)


def test_given_a_version_when_it_is_reloaded_with_its_instant_in_another_offset_then_nothing_changes():
    again = catalog_text(price("kddi", "H200", "780.0000", "2025-12-31T15:00:00Z"))
    assert merged(BASE, again) == merged(BASE)


def test_given_a_catalog_when_a_file_adds_members_skus_and_versions_then_they_are_added():
    more = catalog_text(
        price("nttpc", "L40S", "300", "2026-11-01T00:00:00+09:00"),
        price("kddi", "H200", "800", "2026-11-01T00:00:00+09:00"),
        members=("nttpc",),
        skus=("L40S",),
    )
    catalog = merged(BASE, more)
    assert set(catalog.members) == {"kddi", "sakura", "highreso", "nttpc"}
    assert "L40S" in catalog.skus
    assert [v.yen_per_gpu_hour for v in catalog.prices[("kddi", "H200")]] == ["780", "800"]


def test_given_versions_loaded_out_of_order_then_each_applies_until_the_next_one():
    later = catalog_text(price("kddi", "H200", "900", "2026-10-15T12:30:00+09:00"))
    earlier = catalog_text(price("kddi", "H200", "780"))
    catalog = merged(later, earlier)
    change = instant("2026-10-15T12:30:00+09:00")
    assert catalog.price_at("kddi", "H200", instant("2025-12-31T14:59:59Z")) is None
    assert (
        catalog.price_at("kddi", "H200", instant("2025-12-31T15:00:00Z")).yen_per_gpu_hour == "780"
    )
    assert catalog.price_at("kddi", "H200", change - 1).yen_per_gpu_hour == "780"
    assert catalog.price_at("kddi", "H200", change).yen_per_gpu_hour == "900"
    assert catalog.price_at("kddi", "H200", change + 10**9).yen_per_gpu_hour == "900"


# -- Refused: changes to what is loaded ----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("", "tax_rate_percent = 8"),
        ("tax_rate_percent = 10", "tax_rate_percent = 8"),
        ("", "acceptance_horizon_days = 30"),
        ("acceptance_horizon_days = 100", "acceptance_horizon_days = 35"),
        ("", 'timezone = "UTC"'),
        ('timezone = "UTC"', 'timezone = "Asia/Tokyo"'),
    ],
)
def test_given_a_top_level_setting_when_a_file_changes_it_then_the_whole_file_is_refused(
    first, second
):
    refused(
        catalog_text(price("kddi", "H200", "780"), settings=first), catalog_text(settings=second)
    )


@pytest.mark.parametrize(
    ("first", "second", "tax"),
    [
        ("", "tax_rate_percent = 10", 10),
        ("", 'timezone = "Asia/Tokyo"\nacceptance_horizon_days = 35\ncurrency = "JPY"', 10),
        ("tax_rate_percent = 8", "", 8),
    ],
)
def test_given_a_top_level_setting_when_a_file_repeats_or_omits_it_then_it_loads(
    first, second, tax
):
    catalog = merged(catalog_text(settings=first), catalog_text(settings=second))
    assert catalog.tax_rate_percent == tax


# -- Settings a later file may set once (SPEC.md, 2026-12-07) --------------------------------


def test_given_no_file_sets_the_dispute_window_or_payment_terms_then_their_defaults_apply():
    catalog = merged(catalog_text(price("kddi", "H200", "780")))
    assert (catalog.dispute_window_days, catalog.payment_terms_days) == (60, 30)
    assert (catalog.dispute_window_days_set, catalog.payment_terms_days_set) == (None, None)


@pytest.mark.parametrize("name, default", [("dispute_window_days", 60), ("payment_terms_days", 30)])
def test_given_an_unset_late_setting_then_a_later_file_may_set_it_once(name, default):
    first = merged(catalog_text(price("kddi", "H200", "780")))
    assert getattr(first, name) == default
    catalog = merged(catalog_text(price("kddi", "H200", "780")), catalog_text(settings=f"{name} = 90"))
    assert getattr(catalog, name) == 90
    again = catalog.merge(parse_catalog(catalog_text(settings=f"{name} = 90").encode()), None)
    assert getattr(again, name) == 90
    assert getattr(catalog.merge(parse_catalog(catalog_text().encode()), None), name) == 90  # omitted: stays
    with pytest.raises(CatalogError, match=f"{name} is 90"):
        catalog.merge(parse_catalog(catalog_text(settings=f"{name} = 91").encode()), None)


def test_given_a_first_file_that_sets_the_dispute_window_then_it_is_kept():
    catalog = merged(catalog_text(settings="dispute_window_days = 1000\npayment_terms_days = 45"))
    assert (catalog.dispute_window_days, catalog.payment_terms_days) == (1000, 45)
    refused(catalog_text(settings="dispute_window_days = 1000"), catalog_text(settings="dispute_window_days = 60"))


@pytest.mark.parametrize("text", ["dispute_window_days = -1", "payment_terms_days = 1.5", 'dispute_window_days = "60"'])
def test_given_a_late_setting_that_is_not_a_whole_number_of_days_then_refused(text):
    refused(catalog_text(settings=text))


def test_given_a_currency_other_than_jpy_then_refused():
    refused(catalog_text(settings='currency = "USD"'))


def test_given_an_unknown_timezone_then_a_clear_error():
    with pytest.raises(LedgerError, match="timezone"):
        merged(catalog_text(settings='timezone = "Mars/Olympus_Mons"'))


@pytest.mark.parametrize(
    "member",
    [
        '[[members]]\nid = "kddi"\nname = "KDDI Corporation"\n',
        '[[members]]\nid = "kddi"\nname = "KDDI"\ninvoice_registration = "T1234567890123"\n',
    ],
    ids=["another name", "another invoice registration"],
)
def test_given_a_member_when_a_file_changes_it_then_refused(member):
    refused(BASE, member)


def test_given_a_sku_when_a_file_changes_its_description_then_refused():
    refused(BASE, '[[skus]]\nid = "H200"\ndescription = "NVIDIA H200 NVL"\n')


@pytest.mark.parametrize(
    "change",
    [
        price("kddi", "H200", "781"),
        price("kddi", "H200", "780.0001"),
        price("kddi", "H200", "781", "2025-12-31T15:00:00Z"),  # the same instant, written in UTC
        agreement("kddi", "sakura", "H200", wholesale="521"),
        agreement("kddi", "sakura", "H200", share_bps=7000),
        agreement("kddi", "highreso", "H200", share_bps=7001),
        agreement("kddi", "highreso", "H200", wholesale="520"),
    ],
)
def test_given_a_key_and_effective_from_when_a_file_gives_another_value_then_refused(change):
    message = refused(BASE, catalog_text(change))
    assert "already loaded" in message


def test_given_a_refused_file_then_nothing_of_it_is_loaded():
    ledger = new_ledger(BASE)
    before = ledger.catalog
    bad = catalog_text(
        price("nttpc", "H200", "700"),  # a new member and a new key: fine alone ...
        price("kddi", "H200", "999"),  # ... but this changes an existing version
        members=("kddi", "sakura", "highreso", "nttpc"),
    )
    with pytest.raises(CatalogError):
        ledger.load_catalog(bad.encode())
    assert ledger.catalog == before
    assert "nttpc" not in ledger.catalog.members
    assert send(ledger, usage_event(provider="nttpc", reseller="nttpc")) == "unknown_member"


def test_given_the_same_key_twice_in_one_file_with_two_values_then_refused():
    refused(catalog_text(price("kddi", "H200", "780"), price("kddi", "H200", "790")))


def test_given_the_same_version_twice_in_one_file_then_it_loads_once():
    catalog = merged(catalog_text(price("kddi", "H200", "780"), price("kddi", "H200", "780")))
    assert len(catalog.prices[("kddi", "H200")]) == 1


# -- Refused: new versions inside a closed period ----------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        price("kddi", "H200", "800", "2026-09-30T23:59:59+09:00"),
        price("kddi", "H200", "800", "2026-09-30T14:59:59Z"),
        price("kddi", "H200", "800", "2026-09-15T00:00:00+09:00"),
        price("sakura", "H200", "800", "2026-09-01T00:00:00+09:00"),  # a new key
        agreement(
            "kddi", "sakura", "H200", wholesale="500", effective_from="2026-09-30T23:59:59+09:00"
        ),
    ],
)
def test_given_september_closed_when_a_new_version_takes_effect_inside_it_then_refused(version):
    message = refused(BASE, catalog_text(version), closed_before=END_OF_SEPTEMBER)
    assert "closed" in message


@pytest.mark.parametrize(
    "version",
    [
        price("kddi", "H200", "800", "2026-10-01T00:00:00+09:00"),
        price("kddi", "H200", "800", "2026-09-30T15:00:00Z"),
        agreement(
            "kddi", "sakura", "H200", share_bps=6000, effective_from="2026-10-01T00:00:00+09:00"
        ),
        price("kddi", "H200", "780"),  # identical to the version already there: changes nothing
        agreement("kddi", "sakura", "H200", wholesale="520"),
    ],
)
def test_given_september_closed_when_a_version_starts_at_october_or_is_identical_then_it_loads(
    version,
):
    merged(BASE, catalog_text(version), closed_before=END_OF_SEPTEMBER)


def test_given_a_ledger_closed_through_september_then_loading_a_september_version_is_refused():
    ledger = new_ledger(BASE)
    ledger.settle("2026-09", close=True)
    with pytest.raises(CatalogError):
        ledger.load_catalog(
            catalog_text(price("kddi", "H200", "1", "2026-09-30T00:00:00+09:00")).encode()
        )
    ledger.load_catalog(
        catalog_text(price("kddi", "H200", "1", "2026-10-01T00:00:00+09:00")).encode()
    )


# -- Refused: the shape of a version -------------------------------------------------------


@pytest.mark.parametrize(
    "effective_from",
    [
        '"2026-01-01T00:00:00.5+09:00"',
        '"2026-01-01T00:00:00.0+09:00"',
        '"2026-01-01T00:00:00.000000001Z"',
        '"2026-01-01T00:00:00"',
        '"2026-01-01"',
        '"2026-01-01T00:00:60+09:00"',
        '"2026-02-30T00:00:00+09:00"',
        '"2026-01-01T00:00:00+24:00"',
        "2026-01-01T00:00:00.5+09:00",  # TOML offset date-time values
        "2026-01-01T00:00:00",
        "2026-01-01",
        "1767193200",
    ],
)
def test_given_an_effective_from_that_is_not_a_whole_second_instant_with_an_offset_then_refused(
    effective_from,
):
    text = catalog_text(
        f'[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "780"\n'
        f"effective_from = {effective_from}\n"
    )
    refused(text)


@pytest.mark.parametrize(
    "effective_from",
    ["2026-01-01T00:00:00.000+09:00", "2026-01-01T00:00:00.0000001+09:00"],
)
def test_given_a_toml_date_time_with_a_fraction_that_rounds_to_zero_microseconds_then_refused_too(
    effective_from,
):
    """SPEC.md: effective_from is "in whole seconds (a fraction is refused)". The string
    form refuses any fraction ("...00.0+09:00" above); the TOML date-time form must too."""
    text = catalog_text(
        f'[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "780"\n'
        f"effective_from = {effective_from}\n"
    )
    refused(text)


@pytest.mark.parametrize(
    "effective_from",
    ['"2026-01-01T00:00:00+09:00"', '"2025-12-31t15:00:00z"', "2026-01-01T00:00:00+09:00"],
)
def test_given_an_effective_from_in_whole_seconds_with_an_offset_then_it_loads(effective_from):
    text = catalog_text(
        f'[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "780"\n'
        f"effective_from = {effective_from}\n"
    )
    assert merged(text).prices[("kddi", "H200")][0].effective_from == instant(
        "2025-12-31T15:00:00Z"
    )


AGREEMENT_HEAD = '[[agreements]]\nreseller = "kddi"\nprovider = "sakura"\nsku = "H200"\neffective_from = "2026-01-01T00:00:00+09:00"\n'


@pytest.mark.parametrize(
    "terms",
    [
        'wholesale_yen_per_gpu_hour = "520"\nprovider_share_bps = 7000\n',
        "",
        "provider_share_bps = 10001\n",
        "provider_share_bps = -1\n",
        'provider_share_bps = "7000"\n',
        "provider_share_bps = 7000.0\n",
        "wholesale_yen_per_gpu_hour = 520\n",
        'wholesale_yen_per_gpu_hour = "0"\n',
        'wholesale_yen_per_gpu_hour = "5.20001"\n',
    ],
    ids=[
        "both",
        "neither",
        "share 10001",
        "share -1",
        "share as a string",
        "share as a float",
        "wholesale as a number",
        "wholesale 0",
        "wholesale with 5 decimals",
    ],
)
def test_given_an_agreement_without_exactly_one_valid_term_then_refused(terms):
    refused(catalog_text(price("kddi", "H200", "780"), AGREEMENT_HEAD + terms))


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ("provider_share_bps = 0\n", AgreementVersion(0, None, 0)),
        ("provider_share_bps = 10000\n", AgreementVersion(0, None, 10000)),
        ('wholesale_yen_per_gpu_hour = "0.0001"\n', AgreementVersion(0, 1, None)),
        ('wholesale_yen_per_gpu_hour = "520.1234"\n', AgreementVersion(0, 5_201_234, None)),
    ],
)
def test_given_an_agreement_with_exactly_one_term_then_it_loads(terms, expected):
    catalog = merged(catalog_text(AGREEMENT_HEAD + terms))
    [version] = catalog.agreements[("kddi", "sakura", "H200")]
    assert (version.wholesale_units, version.share_bps) == (
        expected.wholesale_units,
        expected.share_bps,
    )


@pytest.mark.parametrize(
    "yen",
    [
        '"0"',
        '"0.0000"',
        '"1.23456"',
        '"-1"',
        '"1e3"',
        '" 780"',
        '"780 "',
        '""',
        '"780."',
        '".5"',
        "780",
        '"780\\n"',
    ],
)
def test_given_a_retail_price_that_is_not_a_positive_decimal_string_of_at_most_4_decimals_then_refused(
    yen,
):
    refused(
        catalog_text(
            f'[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = {yen}\n'
            'effective_from = "2026-01-01T00:00:00+09:00"\n'
        )
    )


@pytest.mark.parametrize(
    ("yen", "units"),
    [("0.0001", 1), ("780", 7_800_000), ("860.5", 8_605_000), ("1685.1234", 16_851_234)],
)
def test_given_a_retail_price_decimal_string_then_it_is_kept_exactly(yen, units):
    catalog = merged(catalog_text(price("kddi", "H200", yen)))
    assert catalog.prices[("kddi", "H200")][0].yen_per_gpu_hour_units == units


@pytest.mark.parametrize(
    "member_id", ["KDDI", "k", "1abc", "kd_di", "kddi\n", "k" * 33, "-kddi", "kddí"]
)
def test_given_a_member_id_not_matching_the_pattern_then_refused(member_id):
    refused(f'[[members]]\nid = {json.dumps(member_id)}\nname = "X"\n')


@pytest.mark.parametrize("member_id", ["k1", "kd", "k" * 32, "ntt-pc", "a-"])
def test_given_a_member_id_matching_the_pattern_then_it_loads(member_id):
    assert member_id in merged(f'[[members]]\nid = "{member_id}"\nname = "X"\n').members


@pytest.mark.parametrize(
    "registration", ["T123", "t1234567890123", "T12345678901234", "1234567890123", "T123456789012a"]
)
def test_given_an_invoice_registration_other_than_t_and_13_digits_then_refused(registration):
    refused(f'[[members]]\nid = "kddi"\nname = "KDDI"\ninvoice_registration = "{registration}"\n')


@pytest.mark.parametrize(
    "version",
    [
        price("nobody", "H200", "780"),
        price("kddi", "Z999", "780"),
        agreement("kddi", "nobody", "H200", wholesale="520"),
        agreement("nobody", "kddi", "H200", wholesale="520"),
        agreement("kddi", "sakura", "Z999", wholesale="520"),
    ],
)
def test_given_a_version_naming_an_unknown_member_or_sku_then_refused(version):
    refused(catalog_text(version))


def test_given_a_member_defined_in_an_earlier_file_then_a_later_file_may_price_it():
    merged(
        catalog_text(),
        '[[retail_prices]]\nreseller = "kddi"\nsku = "H200"\nyen_per_gpu_hour = "780"\neffective_from = "2026-01-01T00:00:00+09:00"\n',
    )


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", b"currency = ", b"[[members]\n", b"tax_rate_percent = 10.5"]
)
def test_given_a_file_that_is_not_a_valid_toml_catalog_then_a_clear_error(data):
    refused(data)


def test_given_the_default_catalog_of_the_tests_then_it_loads():
    assert load().loaded
