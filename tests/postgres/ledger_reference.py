"""An independent reference of the ledger for the model-based test: SPEC.md's rules
written the plainest way, one GPU-second at a time, for a small fixed alliance.

It shares no code with `ledger`: verdicts, the GPU-second map, booking periods, rating,
invoices, nets and transfers are computed here from the rules' text, so the ledger and
this reference agree only if both follow SPEC.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import orjson

JST = timezone(timedelta(hours=9))
MEMBERS = ("aiko", "bunka", "chiyo")
# gpu_uuid -> (provider, sku)
GPUS = {"GPU-a1": ("aiko", "H100"), "GPU-a2": ("aiko", "H200"), "GPU-b1": ("bunka", "H200"),
        "GPU-c1": ("chiyo", "B200")}
START = datetime(2026, 1, 1, tzinfo=JST)
B200_FROM = datetime(2026, 10, 1, tzinfo=JST)
# (reseller, sku) -> (yen per GPU-hour, from); B200 only once the second catalog is loaded
PRICES_V1 = {(m, sku): (Fraction(p), START) for (m, sku), p in {
    ("aiko", "H100"): "510.1234", ("aiko", "H200"): "860.5", ("bunka", "H100"): "578.5",
    ("bunka", "H200"): "815", ("chiyo", "H100"): "499.9999", ("chiyo", "H200"): "777.7"}.items()}
PRICES_V2 = {(m, "B200"): (Fraction(p), B200_FROM) for m, p in
             (("aiko", "1215.5"), ("bunka", "1192.5"), ("chiyo", "1180.1234"))}
# (reseller, provider, sku) -> ("fixed", yen per GPU-hour) or ("share", bps); (chiyo, aiko,
# H200) has none: no_agreement
AGREEMENTS_V1 = {("bunka", "aiko", "H100"): ("fixed", Fraction("348")),
                 ("bunka", "aiko", "H200"): ("share", 7000),
                 ("chiyo", "aiko", "H100"): ("share", 6500),
                 ("aiko", "bunka", "H200"): ("fixed", Fraction("520.5")),
                 ("chiyo", "bunka", "H200"): ("share", 8000)}
AGREEMENTS_V2 = {("aiko", "chiyo", "B200"): ("share", 7500), ("bunka", "chiyo", "B200"): ("fixed", Fraction("900.25"))}
PERIODS = ("2026-08", "2026-09", "2026-10", "2026-11")


@dataclass(frozen=True)
class Event:
    """One generated line: a well-formed event, or `kind` says how it is broken."""

    gpu: str
    reseller: str
    tenant: str
    sku: str
    start: datetime  # UTC, whole seconds
    seconds: int
    kind: str = "valid"  # valid, malformed, schema

    def line(self, number: int) -> bytes:
        if self.kind == "malformed":
            return b'{"specversion": "1.0", "id": "broken-' + str(number).encode()
        provider = GPUS[self.gpu][0]
        data = {"provider": provider, "reseller": self.reseller, "tenant": self.tenant,
                "gpu_uuid": self.gpu, "sku": self.sku,
                "seconds": 0 if self.kind == "schema" else self.seconds}
        return orjson.dumps({"specversion": "1.0", "id": f"e-{number}", "source": "//model",
                             "type": "gpu.usage.v1", "time": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "data": data})


def period_of(instant: datetime) -> str:
    return instant.astimezone(JST).strftime("%Y-%m")


def next_period(period: str) -> str:
    year, month = map(int, period.split("-"))
    return f"{year + month // 12}-{month % 12 + 1:02d}"


@dataclass
class Reference:
    v2: bool = False
    closed_through: str | None = None
    # (gpu, unix second) -> (attribution, booking period)
    billed: dict[tuple[str, int], tuple[tuple[str, str, str, str], str]] = field(default_factory=dict)
    # dead letters in creation order: [event, reason, replayed]
    letters: list[list] = field(default_factory=list)

    def prices(self) -> dict:
        return {**PRICES_V1, **(PRICES_V2 if self.v2 else {})}

    def agreements(self) -> dict:
        return {**AGREEMENTS_V1, **(AGREEMENTS_V2 if self.v2 else {})}

    def decide(self, event: Event) -> str:
        """The event's outcome (accepted, duplicate or a reason), billing what it adds."""
        if event.kind != "valid":
            return event.kind
        provider = GPUS[event.gpu][0]
        if event.reseller not in MEMBERS:
            return "unknown_member"
        if event.sku not in (("H100", "H200", "B200") if self.v2 else ("H100", "H200")):
            return "unknown_sku"
        seconds = [int(event.start.timestamp()) + i for i in range(event.seconds)]
        price = self.prices().get((event.reseller, event.sku))
        if price is None or any(datetime.fromtimestamp(s, JST) < price[1] for s in seconds):
            return "no_price"
        if provider != event.reseller:
            agreement = self.agreements().get((event.reseller, provider, event.sku))
            from_ = B200_FROM if event.sku == "B200" else START
            if agreement is None or any(datetime.fromtimestamp(s, JST) < from_ for s in seconds):
                return "no_agreement"
        attribution = (provider, event.reseller, event.tenant, event.sku)
        claimed = [self.billed.get((event.gpu, s)) for s in seconds]
        if any(c is not None and c[0] != attribution for c in claimed):
            return "conflict"
        new = [s for s, c in zip(seconds, claimed, strict=True) if c is None]
        for second in new:
            service = period_of(datetime.fromtimestamp(second, UTC))
            closed = self.closed_through is not None and service <= self.closed_through
            self.billed[(event.gpu, second)] = (attribution, next_period(self.closed_through) if closed else service)
        return "accepted" if new else "duplicate"

    def ingest(self, events: list[Event]) -> dict:
        counts = {"received": len(events), "accepted": 0, "duplicate": 0, "rejected": {}}
        for event in events:
            outcome = self.decide(event)
            if outcome in ("accepted", "duplicate"):
                counts[outcome] += 1
            else:
                counts["rejected"][outcome] = counts["rejected"].get(outcome, 0) + 1
                self.letters.append([event, outcome, False])
        counts["rejected"] = dict(sorted(counts["rejected"].items()))
        return counts

    def replay(self, reason: str) -> dict:
        chosen = [letter for letter in self.letters if letter[1] == reason and not letter[2]]
        for letter in chosen:
            letter[2] = True
        counts = self.ingest([letter[0] for letter in chosen])
        # The model's events are all within 1 MiB: every dead letter keeps them whole.
        return {"replayed": len(chosen), "skipped_not_replayable": 0, **counts}

    def statement(self, period: str) -> dict:
        """The parts of a statement this reference computes (every line's amounts, the
        invoices, nets and transfers)."""
        seconds: dict[tuple, int] = {}
        for (_gpu, second), (attribution, booking) in self.billed.items():
            if booking == period:
                provider, reseller, tenant, sku = attribution
                key = (reseller, tenant, provider, sku, period_of(datetime.fromtimestamp(second, UTC)))
                seconds[key] = seconds.get(key, 0) + 1
        lines = [self._line(key, count) for key, count in sorted(seconds.items())]
        tenants: dict[tuple, int] = {}
        members: dict[tuple, int] = {}
        for line in lines:
            tenant_key = (line["reseller"], line["tenant"])
            tenants[tenant_key] = tenants.get(tenant_key, 0) + line["retail_yen"]
            if line["provider"] != line["reseller"]:
                member_key = (line["provider"], line["reseller"])
                members[member_key] = members.get(member_key, 0) + line["wholesale_yen"]
        tenant_invoices = [{"reseller": r, "tenant": t, "retail_yen": amount, "credit_yen": 0, **_taxed(amount)} for (r, t), amount in sorted(tenants.items())]
        member_invoices = [{"provider": p, "reseller": r, **_taxed(amount)} for (p, r), amount in sorted(members.items())]
        nets = dict.fromkeys(MEMBERS, 0)
        for invoice in member_invoices:
            nets[invoice["provider"]] += invoice["total_yen"]
            nets[invoice["reseller"]] -= invoice["total_yen"]
        return {"closed": self.closed_through is not None and period <= self.closed_through, "lines": lines,
                "tenant_invoices": tenant_invoices, "member_invoices": member_invoices,
                "net_yen": nets, "transfers": _transfers(dict(nets))}

    def _line(self, key: tuple, count: int) -> dict:
        reseller, tenant, provider, sku, service = key
        price = self.prices()[(reseller, sku)][0]
        if provider == reseller:
            wholesale = 0
        else:
            kind, rate = self.agreements()[(reseller, provider, sku)]
            wholesale = (count * rate / 3600 if kind == "fixed" else count * price * rate / 36_000_000).__floor__()
        return {"reseller": reseller, "tenant": tenant, "provider": provider, "sku": sku, "service_period": service,
                "gpu_seconds": count, "retail_yen": (count * price / 3600).__floor__(), "wholesale_yen": wholesale}


def _taxed(amount: int) -> dict:
    tax = amount * 10 // 100
    return {"subtotal_yen": amount, "tax_yen": tax, "total_yen": amount + tax}


def _transfers(nets: dict[str, int]) -> list[dict]:
    transfers = []
    while any(nets.values()):
        debtor = min(nets, key=lambda m: (nets[m], m))
        creditor = min(nets, key=lambda m: (-nets[m], m))
        amount = min(-nets[debtor], nets[creditor])
        transfers.append({"from": debtor, "to": creditor, "amount_yen": amount})
        nets[debtor] += amount
        nets[creditor] -= amount
    return transfers

