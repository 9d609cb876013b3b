"""Which GPUs `gpuledger simulate` runs, and who may rent them: read from the catalog.

A simulated GPU is a registered one in service (the registry, `[[gpus]]` or
`gpuledger gpus load`), or, only when the catalog does not require registered GPUs
(SPEC.md, check 7), a synthesised one. Either way it gets only resellers that can bill
it at the start of the run: a retail price of (reseller, sku) in effect and, unless the
reseller is the provider, an agreement of (reseller, provider, sku). Versions apply
until the next one, so what is billable at the start stays billable; the simulator's
events are never `no_price`, `no_agreement` or `unregistered_gpu`.

Tenants: each reseller has a few tenant slots whose occupant changes every few hours
(customers come and go), plus the tenants its grants name. A tenant's id is a function
of the seed, the reseller, the slot and the time, so it does not depend on the order in
which GPUs are simulated. Pure: no I/O, no clock; randomness only from seeded generators.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from ledger.domain.catalog import Catalog
from ledger.domain.errors import InputError

DEFAULT_SYNTHESISED_GPUS = 8  # when nothing is registered and --gpus is not given
MAX_GPUS = 100_000
TENANT_SLOTS = 12  # per reseller
TENANT_LIFETIME_SECONDS = 4 * 3600  # how long a slot keeps its occupant
MAX_REMEMBERED_TENANTS = 10_000
OWN_RESELLER_SHARE = 0.5  # how often a provider rents its own GPU, when it may
SYNTHESISED_REGION = "sim"

_FIRST_WORDS = (
    "aozora", "hikari", "mirai", "kumo", "tsubame", "hoshi", "yamabiko", "umi", "kaze",
    "midori", "asahi", "nami", "tsuki", "hinode", "kirin", "hayabusa",
)
_SECOND_WORDS = (
    "ai", "labs", "robotics", "bio", "vision", "research", "games", "pharma", "univ",
    "llm", "drive", "med", "quant", "studio", "works", "systems",
)


@dataclass(frozen=True, slots=True)
class SimulatedGpu:
    """A GPU of the simulated fleet: its registration (or a synthesised one) and the
    resellers that may bill it, in code point order."""

    uuid: str
    provider: str
    sku: str
    region: str
    resellers: tuple[str, ...]
    registered: bool
    retired_from: int | None = None


@dataclass(frozen=True, slots=True)
class Fleet:
    """The GPUs to simulate, and what the choice left out (for the command's notices)."""

    gpus: tuple[SimulatedGpu, ...]
    registered_in_service: int  # registered GPUs in service that some member can bill
    unbillable: int  # registered GPUs in service that no member can bill now
    synthesised: int
    require_registered_gpus: bool


def billable_resellers(catalog: Catalog, provider: str, sku: str, at: int) -> tuple[str, ...]:
    """Members that can bill a tenant for `provider`'s `sku` from `at` on."""
    found = []
    for reseller in sorted(catalog.members):
        if catalog.price_at(reseller, sku, at) is None:
            continue
        if reseller != provider and catalog.agreement_at(reseller, provider, sku, at) is None:
            continue
        found.append(reseller)
    return tuple(found)


def choose_fleet(catalog: Catalog, at: int, wanted: int | None, seed: int) -> Fleet:
    """`wanted` GPUs to simulate from `at` on (None: every registered GPU in service, or
    DEFAULT_SYNTHESISED_GPUS when none is), or InputError saying why it cannot be done."""
    if not catalog.loaded or not catalog.members:
        raise InputError("no catalog is loaded: load one with `gpuledger catalog load FILE` first")
    eligible, unbillable = [], 0
    for _, registration in sorted(catalog.gpus.items()):
        if not registration.in_service(at, at + 1):
            continue
        resellers = billable_resellers(catalog, registration.provider, registration.sku, at)
        if not resellers:
            unbillable += 1
            continue
        eligible.append(SimulatedGpu(
            registration.uuid, registration.provider, registration.sku, registration.region,
            resellers, True, registration.retired_from,
        ))
    if wanted is None:
        wanted = len(eligible) or DEFAULT_SYNTHESISED_GPUS
    if not 1 <= wanted <= MAX_GPUS:
        raise InputError(f"--gpus must be 1..{MAX_GPUS}, not {wanted}")
    rng = random.Random(f"{seed}:fleet")
    if wanted <= len(eligible):
        chosen = sorted(rng.sample(eligible, wanted), key=lambda gpu: gpu.uuid)
        return Fleet(tuple(chosen), len(eligible), unbillable, 0, catalog.require_registered_gpus)
    missing = wanted - len(eligible)
    if catalog.require_registered_gpus:
        raise InputError(_too_few_registered(len(eligible), wanted, unbillable))
    synthesised = _synthesise(catalog, at, missing, rng)
    return Fleet(tuple(eligible) + synthesised, len(eligible), unbillable, missing, False)


def _too_few_registered(eligible: int, wanted: int, unbillable: int) -> str:
    why = f" ({unbillable} more are in service but no member can bill them now)" if unbillable else ""
    if eligible == 0:
        return (
            f"no registered GPU is in service with a member that can bill it{why}, and the catalog "
            "requires registered GPUs: register some with `gpuledger gpus load FILE`"
        )
    return (
        f"only {eligible} registered GPUs are in service with a member that can bill them{why}, "
        f"not {wanted}, and the catalog requires registered GPUs: use --gpus {eligible} or "
        "register more with `gpuledger gpus load FILE`"
    )


def _synthesise(catalog: Catalog, at: int, count: int, rng: random.Random) -> tuple[SimulatedGpu, ...]:
    """`count` unregistered GPUs, spread over every (provider, sku) some member can bill."""
    kinds = [
        (provider, sku, resellers)
        for provider in sorted(catalog.members)
        for sku in sorted(catalog.skus)
        if (resellers := billable_resellers(catalog, provider, sku, at))
    ]
    if not kinds:
        raise InputError(
            "no member can bill any GPU now: the catalog has no retail price (and, for resold "
            "GPUs, no agreement) in effect"
        )
    gpus = []
    for number in range(count):
        provider, sku, resellers = kinds[number % len(kinds)]
        gpus.append(SimulatedGpu(_uuid_like(rng), provider, sku, SYNTHESISED_REGION, resellers, False))
    return tuple(gpus)


def _uuid_like(rng: random.Random) -> str:
    """`GPU-5f1c0b9e-...`: how NVIDIA names a GPU, drawn from the seeded generator."""
    return f"GPU-{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def event_id(rng: random.Random) -> str:
    """A collector's event id: a version 4 UUID from the seeded generator."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Tenants:
    """Each reseller's tenants over time: slots whose occupants come and go."""

    def __init__(self, catalog: Catalog, seed: int, period: str) -> None:
        self.seed = seed
        # Tenants with a grant covering this period or later stay: their credit is there to draw.
        self.granted: dict[str, tuple[str, ...]] = {}
        for grant in catalog.grants.values():
            if grant.last_period >= period:
                self.granted[grant.reseller] = (*self.granted.get(grant.reseller, ()), grant.tenant)
        self._names: dict[tuple[str, int, int], str] = {}

    def pick(self, reseller: str, at: int, rng: random.Random) -> str:
        """A tenant of `reseller` at `at`: a grant's tenant, or a slot's occupant."""
        granted = self.granted.get(reseller, ())
        slot = rng.randrange(TENANT_SLOTS + len(granted))
        if slot >= TENANT_SLOTS:
            return granted[slot - TENANT_SLOTS]
        return self.occupant(reseller, slot, at)

    def occupant(self, reseller: str, slot: int, at: int) -> str:
        """Who holds a slot at `at`: slots change hands at staggered times."""
        offset = slot * TENANT_LIFETIME_SECONDS // TENANT_SLOTS
        tenure = (at + offset) // TENANT_LIFETIME_SECONDS
        key = (reseller, slot, tenure)
        name = self._names.get(key)
        if name is None:
            if len(self._names) >= MAX_REMEMBERED_TENANTS:
                self._names.clear()  # a cache only: a name is a function of its key
            rng = random.Random(f"{self.seed}:tenant:{reseller}:{slot}:{tenure}")
            name = f"{rng.choice(_FIRST_WORDS)}-{rng.choice(_SECOND_WORDS)}-{rng.getrandbits(16):04x}"
            self._names[key] = name
        return name


def pick_reseller(gpu: SimulatedGpu, rng: random.Random) -> str:
    """Who rents the GPU out next: often its own provider, else a partner."""
    others = [reseller for reseller in gpu.resellers if reseller != gpu.provider]
    if gpu.provider in gpu.resellers and (not others or rng.random() < OWN_RESELLER_SHARE):
        return gpu.provider
    return rng.choice(others)
