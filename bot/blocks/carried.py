"""Small state carried inside Slack itself (private_metadata, button values) as compact JSON."""

from __future__ import annotations

import json
from typing import Self

from pydantic import BaseModel, ValidationError


class Carried(BaseModel):
    """`encode()` to compact JSON; `decode()` back, None for anything that is not ours."""

    def encode(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: object) -> Self | None:
        if not isinstance(raw, str):
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            return None
