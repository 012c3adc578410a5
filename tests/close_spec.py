"""Close's published OpenAPI description (tests/specs/close-openapi.yml), for the tests.

It is a JSON Schema 2020-12 world (OpenAPI 3.1): a part of it becomes a standalone schema once
the spec's `components` travel with it, so its `#/components/schemas/…` references resolve.
Validate without a format checker: the spec says `date-time` for `date_won`, Close sends and
takes YYYY-MM-DD.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import yaml

from tests.conftest import SPECS


@functools.cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        spec: dict[str, Any] = yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return spec


def close_spec() -> dict[str, Any]:
    """The whole description (parsed once per run)."""
    return _load(str(SPECS / "close-openapi.yml"))


def spec_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` (a piece of the spec, or a `$ref` into it) as a schema jsonschema can resolve."""
    return {**schema, "components": close_spec()["components"]}


def create_opportunity_schema() -> dict[str, Any]:
    """`POST /opportunity/`'s body: `CreateOpportunity` (it leaves `custom.cf_…` keys free)."""
    return spec_schema({"$ref": "#/components/schemas/CreateOpportunity"})
