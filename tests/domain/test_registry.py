"""The GPU registry, grants and registration numbers in the catalog; check 8 on events.

SPEC.md, "Catalog (TOML)", "GPU registry", "Credits (grants)" and check 8 `unregistered_gpu`.
"""

from __future__ import annotations

import pytest

from ledger.domain import events
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.errors import CatalogError
from ledger.domain.registry import registration_check_digit, valid_invoice_registration
from ledger.domain.registry_file import parse_registry_csv
from tests.factories import DEFAULT_VERSIONS, catalog_text, instant, load, on_time_ms, usage_event
from tests.scenario import SCENARIOS

GPU = "GPU-0001"
REGISTERED = "2026-09-01T00:00:00+09:00"


def gpu(uuid: str = GPU, provider: str = "sakura", sku: str = "H200", region: str = "jp-ishikari",
        registered_from: str = REGISTERED, retired_from: str | None = None) -> str:
    text = (f'[[gpus]]\nuuid = "{uuid}"\nprovider = "{provider}"\nsku = "{sku}"\nregion = "{region}"\n'
            f'registered_from = "{registered_from}"\n')
    if retired_from is not None:
        text += f'retired_from = "{retired_from}"\n'
    return text + "\n"


def grant(grant_id: str = "poc-acme", funder: str = "sakura", reseller: str = "kddi", tenant: str = "acme",
          amount: int = 1000, skus: list[str] | None = None, first: str = "2026-10", last: str = "2026-12",
          providers: list[str] | None = None) -> str:
    text = (f'[[grants]]\nid = "{grant_id}"\nfunder = "{funder}"\nreseller = "{reseller}"\n'
            f'tenant = "{tenant}"\namount_yen = {amount}\nfirst_period = "{first}"\nlast_period = "{last}"\n')
    if skus is not None:
        text += "skus = [" + ", ".join(f'"{s}"' for s in skus) + "]\n"
    if providers is not None:
        text += "providers = [" + ", ".join(f'"{p}"' for p in providers) + "]\n"
    return text + "\n"


def registry_catalog(*entries: str, required: bool = True) -> str:
    settings = f"require_registered_gpus = {'true' if required else 'false'}\n"
    return catalog_text(*DEFAULT_VERSIONS, *entries, settings=settings)


# -- registration numbers --------------------------------------------------------------


@pytest.mark.parametrize("number", ["T7123456789012", "T2676123716326", "T3152963889760", "T7016748827996"])
def test_a_valid_check_digit_is_accepted(number):
    assert valid_invoice_registration(number)


@pytest.mark.parametrize("number", ["T6123456789012", "T1234567890123", "T712345678901", "X7123456789012",
                                    "T７123456789012", "T71234567890123"])
def test_a_wrong_check_digit_or_form_is_refused(number):
    assert not valid_invoice_registration(number)


def test_the_check_digit_is_nine_minus_the_weighted_sum_mod_nine():
    # 123456789012 from the right: 2*1 + 1*2 + 0*1 + 9*2 + 8*1 + 7*2 + 6*1 + 5*2 + 4*1 + 3*2 + 2*1 + 1*2 = 74
    assert registration_check_digit("123456789012") == 9 - 74 % 9
    assert registration_check_digit("000000000000") == 9


def test_a_member_with_a_wrong_check_digit_refuses_the_file():
    text = catalog_text() + '[[members]]\nid = "nttpc"\nname = "NTTPC"\ninvoice_registration = "T1234567890123"\n'
    with pytest.raises(CatalogError, match="check digit"):
        load(text)


# -- the registry --------------------------------------------------------------------------


def test_a_registration_loads_and_a_retirement_may_be_added_once():
    catalog = load(registry_catalog(gpu()))
    assert catalog.gpus[GPU].retired_from is None and catalog.region_of(GPU, "sakura", "H200") == "jp-ishikari"
    retired = load(registry_catalog(gpu(retired_from="2026-11-01T00:00:00+09:00")), catalog)
    assert retired.gpus[GPU].retired_from == instant("2026-11-01T00:00:00+09:00")
    assert load(registry_catalog(gpu()), retired) == retired  # an omitted retirement stays
    with pytest.raises(CatalogError, match="already registered"):
        load(registry_catalog(gpu(retired_from="2026-12-01T00:00:00+09:00")), retired)


@pytest.mark.parametrize(
    "entry, message",
    [
        (gpu(provider="nobody"), "not a member"),
        (gpu(sku="A100"), "not in the catalog"),
        (gpu(retired_from=REGISTERED), "not after registered_from"),
        (gpu(region="Tokyo"), "region"),
        (gpu(uuid="GPU with space"), "uuid"),
        (gpu() + gpu(), "appears more than once"),
        (gpu(registered_from="2026-09-01T00:00:00.5+09:00"), "whole seconds"),
    ],
)
def test_a_bad_registration_refuses_the_whole_file(entry, message):
    with pytest.raises(CatalogError, match=message):
        load(registry_catalog(entry))


def test_another_provider_or_sku_for_a_registered_uuid_refuses_the_file():
    catalog = load(registry_catalog(gpu()))
    with pytest.raises(CatalogError, match="already registered"):
        load(registry_catalog(gpu(provider="kddi")), catalog)


def test_registrations_may_start_in_a_closed_period():
    closed_before = instant("2026-10-01T00:00:00+09:00")
    base = load(registry_catalog())
    catalog = load(registry_catalog(gpu(registered_from="2026-01-01T00:00:00+09:00")), base, closed_before)
    assert GPU in catalog.gpus


# -- check 8 -------------------------------------------------------------------------------


def verdict(catalog, **fields) -> str:
    event = usage_event(**fields)
    result = events.check(event, on_time_ms(event), catalog)
    return result.reason if isinstance(result, events.Rejection) else "ok"


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({}, "ok"),
        ({"gpu_uuid": "GPU-nobody"}, "unregistered_gpu"),
        ({"provider": "highreso"}, "unregistered_gpu"),  # another provider's GPU
        ({"sku": "H100", "reseller": "kddi"}, "unregistered_gpu"),  # under another SKU
        ({"time": "2026-08-31T14:59:59Z", "seconds": 2}, "unregistered_gpu"),  # straddles registered_from
        ({"time": "2026-08-31T14:59:59Z", "seconds": 1}, "unregistered_gpu"),  # ends at registered_from
        ({"time": "2026-08-31T15:00:00Z", "seconds": 1}, "ok"),  # its first second
        ({"time": "2026-10-31T14:59:59Z", "seconds": 1}, "ok"),  # its last second
        ({"time": "2026-10-31T14:59:59Z", "seconds": 2}, "unregistered_gpu"),  # past retired_from
    ],
)
def test_check_8_bills_only_registered_gpus_in_service(fields, expected):
    catalog = load(registry_catalog(gpu(retired_from="2026-11-01T00:00:00+09:00")))
    assert verdict(catalog, **{"time": "2026-10-03T12:00:00Z", **fields}) == expected


def test_check_8_is_skipped_unless_required_and_comes_after_too_late_before_no_price():
    loose = load(registry_catalog(gpu(), required=False))
    assert verdict(loose, gpu_uuid="GPU-nobody") == "ok"
    strict = load(registry_catalog(gpu()))
    event = usage_event(gpu_uuid="GPU-nobody", time="2026-10-03T12:00:00Z")
    late = events.check(event, on_time_ms(event) + 40 * 86_400_000, strict)
    assert late.reason == "too_late"
    assert verdict(strict, gpu_uuid="GPU-nobody", sku="B200") == "unregistered_gpu"  # not no_price


def test_the_detail_of_check_8_names_no_owner():
    strict = load(registry_catalog(gpu()))
    event = usage_event(provider="highreso")
    result = events.check(event, on_time_ms(event), strict)
    assert "sakura" not in result.detail and "ishikari" not in result.detail


# -- grants ---------------------------------------------------------------------------------


def test_a_grant_loads_and_may_only_be_repeated_identically():
    catalog = load(registry_catalog(grant(skus=["H200"])))
    assert catalog.grants["poc-acme"].skus == frozenset({"H200"})
    assert load(registry_catalog(grant(skus=["H200", "H200"])), catalog) == catalog  # a set
    for changed in (grant(amount=999, skus=["H200"]), grant()):  # an omitted skus differs from any list
        with pytest.raises(CatalogError, match="never changes"):
            load(registry_catalog(changed), catalog)


def test_a_grants_providers_load_as_a_set_and_an_omitted_list_differs_from_any():
    catalog = load(registry_catalog(grant(providers=["sakura", "kddi"])))
    assert catalog.grants["poc-acme"].providers == frozenset({"sakura", "kddi"})
    assert load(registry_catalog(grant(providers=["kddi", "sakura", "kddi"])), catalog) == catalog
    for changed in (grant(providers=["sakura"]), grant()):
        with pytest.raises(CatalogError, match="never changes"):
            load(registry_catalog(changed), catalog)
    assert load(registry_catalog(grant())).grants["poc-acme"].providers is None


@pytest.mark.parametrize(
    "entry, message",
    [
        (grant(funder="nobody"), "funder 'nobody' is not a member"),
        (grant(reseller="nobody"), "reseller 'nobody' is not a member"),
        (grant(skus=["A100"]), "SKU 'A100' is not in the catalog"),
        (grant(first="2026-12", last="2026-10"), "after last_period"),
        (grant(amount=0), "amount_yen"),
        (grant(grant_id="Bad Id"), "id"),
        (grant(tenant="t\u00e9"), "tenant"),
        (grant(skus=[]), "skus"),
        (grant(providers=["nobody"]), "provider 'nobody' is not a member"),
        (grant(providers=[]), "providers"),
        (grant(providers=["Sakura"]), "providers"),
        (grant() + grant(), "appears more than once"),
    ],
)
def test_a_bad_grant_refuses_the_whole_file(entry, message):
    with pytest.raises(CatalogError, match=message):
        load(registry_catalog(entry))


def test_a_new_grant_may_not_start_in_a_closed_period():
    closed_before = instant("2026-11-01T00:00:00+09:00")
    base = load(registry_catalog())
    with pytest.raises(CatalogError, match="closed"):
        load(registry_catalog(grant(first="2026-10")), base, closed_before)
    assert "poc-acme" in load(registry_catalog(grant(first="2026-11")), base, closed_before).grants


def test_the_public_scenarios_catalogs_load_whole():
    q4 = load((SCENARIOS / "alliance-2026-q4" / "catalog.toml").read_text())
    assert len(q4.gpus) == 13 and len(q4.grants) == 7 and q4.require_registered_gpus
    parse_catalog((SCENARIOS / "alliance-2026-q3" / "catalog.toml").read_bytes())


# -- the registry in bulk (CSV) ----------------------------------------------------------------

CSV_HEADER = b"uuid,provider,sku,region,registered_from,retired_from\n"


def test_a_fleet_loads_from_csv_under_the_catalogs_rules():
    rows = b"".join(
        f"GPU-{n:05d},sakura,H200,jp-tokyo,2026-01-01T00:00:00+09:00,\n".encode() for n in range(20_000)
    )
    content = parse_registry_csv(CSV_HEADER + rows + b"GPU-R,kddi,H100,jp-osaka,2026-01-01T00:00:00Z,2026-06-01T00:00:00Z\n")
    catalog = load(registry_catalog()).merge(content, None)
    assert len(catalog.gpus) == 20_001 and catalog.gpus["GPU-R"].retired_from == instant("2026-06-01T00:00:00Z")
    assert catalog.merge(content, None) == catalog  # a reload adds nothing


@pytest.mark.parametrize(
    "body, message",
    [
        (b"uuid,provider\nGPU-1,sakura\n", "first line"),
        (CSV_HEADER + b"GPU-1,sakura,H200,jp-tokyo\n", "line 2: 4 fields"),
        (CSV_HEADER + b"GPU 1,sakura,H200,jp-tokyo,2026-01-01T00:00:00Z,\n", "line 2: uuid"),
        (CSV_HEADER + b"GPU-1,sakura,H200,jp-tokyo,2026-01-01,\n", "line 2: registered_from"),
        (CSV_HEADER + b"GPU-1,sakura,H200,jp-tokyo,2026-01-01T00:00:00Z,\n" * 2, "appears more than once"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_csv_is_refused_naming_its_line(body, message):
    with pytest.raises(CatalogError, match=message):
        parse_registry_csv(body)


def test_a_csv_row_breaking_a_load_rule_refuses_the_whole_file():
    content = parse_registry_csv(CSV_HEADER + b"GPU-1,nobody,H200,jp-tokyo,2026-01-01T00:00:00Z,\n")
    with pytest.raises(CatalogError, match="not a member"):
        load(registry_catalog()).merge(content, None)
