"""The agent's configuration: checked whole, one-line errors."""

import pytest

from ledger.collect.attribution import Holder, StaticRentals
from ledger.collect.config import config_of
from ledger.domain.errors import InputError

BASE = {"member": "sakura", "node": "n1", "attribution": {"source": "static", "rentals": "/r.toml"}}


def test_a_kubernetes_node_with_a_namespace_map():
    config = config_of(BASE | {"attribution": {"source": "kubernetes"}, "kubernetes": {
        "namespaces": {"team-a": {"reseller": "kddi", "tenant": "acme"}}, "tenant_label": "t", "reseller_label": "r"}})
    assert config.kubernetes.namespaces == {"team-a": Holder("kddi", "acme")}
    assert config.kubernetes.socket == "/var/lib/kubelet/pod-resources/kubelet.sock"


@pytest.mark.parametrize("change, message", [
    ({"member": "Sakura"}, "member 'Sakura' is not a member id"),
    ({"colour": 1}, "unknown keys ['colour']"),
    ({"attribution": {"source": "slurm"}}, "attribution.source must be one of static, kubernetes"),
    ({"attribution": {"source": "static"}}, "attribution.rentals names the rentals file"),
    ({"spool_max_events": 0}, "spool_max_events must be an integer from 1"),
    ({"kubernetes": {"namespaces": {"a": {"reseller": "kddi", "tenant": ""}}}}, "tenant '' is not 1-64 printable"),
])
def test_what_cannot_be_used_is_refused(change, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_of(BASE | change)


def test_a_rentals_file_that_breaks_later_keeps_the_last_good_rentals(tmp_path):
    path = tmp_path / "rentals.toml"
    path.write_text('[[rentals]]\ngpu_uuid = "*"\nreseller = "kddi"\ntenant = "acme"\n')
    rentals = StaticRentals(path)
    path.write_text('[[rentals]]\ngpu_uuid = "*"\nreseller = "kddi"\ntenant = "acme"\nuntil = "yesterday"\n')
    rentals.reload()
    assert rentals.error and len(rentals.rentals) == 1


def test_a_bad_rentals_file_at_start_is_refused(tmp_path):
    path = tmp_path / "rentals.toml"
    path.write_text('[[rentals]]\ngpu_uuid = "has space"\nreseller = "kddi"\ntenant = "acme"\n')
    with pytest.raises(InputError, match="neither a GPU UUID"):
        StaticRentals(path)
