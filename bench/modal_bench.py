"""Times `build_opportunity_modal` (and the lead typeahead options) per call, on realistic and oversized orgs.

Run: `python -m bench.modal_bench [--n N]`. One process, after warm-up; prints the median and
p99 microseconds per build for each case. `--dump FILE` writes every case's view as JSON (to
compare two builders' output byte for byte).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

from bot.blocks.modal import LeadOption, ModalForm, ModalMetadata, build_opportunity_modal
from bot.blocks.modal import lead_options as build_lead_options
from bot.close.catalog import Catalog, _Snapshot
from bot.close.models import Contact, CustomField, Pipeline, Status, User
from sandbox.close_sim import Org, default_org, every_field_type_org


def catalog_of(org: Org) -> Catalog:
    """A loaded Catalog holding the simulator org's data, without any HTTP."""
    statuses = [Status.model_validate(s) for s in org.statuses]
    pipelines = [
        Pipeline.model_validate({**p, "statuses": [s for s in org.statuses_of(p["id"])]})
        for p in org.pipelines
    ]
    catalog = Catalog(close=None)  # type: ignore[arg-type]  # never refreshed here
    catalog._snapshot = _Snapshot.build(
        pipelines,
        statuses,
        [User.model_validate(u) for u in org.users],
        [CustomField.model_validate(f) for f in org.custom_fields],
    )
    catalog.loaded = True
    return catalog


def big_org() -> Org:
    """Oversized: 150 statuses in 3 pipelines, 60 custom fields, 150 users, long texts."""
    org = default_org()
    org.pipelines = [
        {"id": f"pipe_{p}", "name": f"Pipeline {p} " + "P" * 290, "organization_id": org.id}
        for p in range(3)
    ]
    org.statuses = [
        {"id": f"stat_{p}_{s}", "label": f"Status {s} " + "S" * 290, "type": "active"}
        | {"pipeline_id": f"pipe_{p}", "organization_id": org.id}
        for p in range(3)
        for s in range(50)
    ]
    kinds = ["text", "number", "date", "choices", "user", "datetime"]
    org.custom_fields = []
    for i in range(60):
        org.add_custom_field(
            f"cf_{i:02d}" + "x" * 41,
            f"Field {i} " + "N" * 290,
            kinds[i % len(kinds)],
            [f"Choice {c} " + "C" * 290 for c in range(150 if i % 12 == 3 else 20)],
            multiple=i % 2 == 1,
            required=i % 5 == 0,
            description="D" * 3000,
        )
    org.users = [
        {"id": f"user_{u}", "email": f"u{u}@example.com", "first_name": "U" * 300, "last_name": ""}
        for u in range(150)
    ]
    return org


def forms() -> dict[str, ModalForm]:
    metadata = ModalMetadata(
        key="0" * 32, channel_id="C0SALES", response_url="https://hooks.slack.com/commands/T0/1"
    )
    opened = ModalForm(
        metadata=metadata,
        lead_hint="Looking up “Acme” in Close…",
        value_text="$12,000",
        value_period="annual",
        confidence=60,
        date_won=date(2027, 3, 5),
        status_id="stat_demo",
        owner="U0ALICE",
        note="Call went well",
        summary="Acme · $12,000 annual · 60% · closes Fri 5 Mar 2027",
        custom={"cf_source": "Referral", "cf_products": ["Core", "Support"]},
    )
    contacts = [
        Contact(id="cont_acme_wile", name="Wile E. Coyote"),
        Contact(id="cont_acme_road", name="Road Runner"),
    ]
    preselected = opened.model_copy(
        update={
            "lead": LeadOption(value="lead_acme", label="Acme Corp"),
            "lead_hint": "Also in Close: Acme Corp EU",
            "contacts": contacts,
            "contact_id": "cont_acme_road",
        }
    )
    return {
        "empty": ModalForm(metadata=metadata),
        "opened": opened,
        "preselected": preselected,
        "errors": preselected.model_copy(
            update={"errors": {"value": "Value must be a number", "custom.cf_source": "Required"}}
        ),
        "post_in_source": opened.model_copy(
            update={
                "metadata": metadata.model_copy(
                    update={"post_in": True, "source_channel": "C1", "source_ts": "1.2"}
                ),
                "post_in": "C0SALES",
            }
        ),
        "edit": preselected.model_copy(
            update={"metadata": metadata.model_copy(update={"mode": "edit"})}
        ),
    }


def cases() -> dict[str, Callable[[], dict[str, Any]]]:
    """Every (org, form) pair as a zero-argument builder."""
    orgs = {"default": default_org(), "every_type": every_field_type_org(), "big": big_org()}
    found: dict[str, Callable[[], dict[str, Any]]] = {}
    for org_name, org in orgs.items():
        catalog = catalog_of(org)
        for form_name, form in forms().items():
            found[f"{org_name}/{form_name}"] = partial(build_opportunity_modal, form, catalog)
    leads = [LeadOption(value=f"lead_{i}", label=f"Acme {i}") for i in range(20)]
    found["lead_options/20"] = lambda: {"options": build_lead_options(leads, "Acme")}
    return found


def time_case(build: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(min(n, 50)):
        build()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        build()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="builds per case (2000)")
    parser.add_argument("--dump", help="write each case's output as JSON to this file")
    args = parser.parse_args()
    all_cases = cases()
    if args.dump:
        with open(args.dump, "w") as out:
            json.dump({name: build() for name, build in all_cases.items()}, out, indent=1)
    print(f"{'case':<28} {'median µs':>10} {'p99 µs':>10}")
    for name, build in all_cases.items():
        n = args.n // 10 if name.startswith("big/") else args.n
        median, p99 = time_case(build, n)
        print(f"{name:<28} {median:>10.1f} {p99:>10.1f}")


if __name__ == "__main__":
    main()
