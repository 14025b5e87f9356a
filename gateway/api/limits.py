"""Sizes of what callers send through GraphQL: names, titles, descriptions, tags, attributes, id lists.

The numbers are settings (gateway/settings.py, GATEWAY_MAX_*); every refusal is BAD_USER_INPUT naming the
field and the limit. The mutations call these before any service sees the input. Control characters
are refused in single-line text (the probe stored a name made of NUL bytes); descriptions may hold
tabs and line breaks. Lists in request variables are also capped as a whole, before graphql-core
coerces them item by item (gateway/api/cost.py, GATEWAY_MAX_INPUT_ITEMS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.errors import BadInput
from gateway.settings import Settings

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Store identifiers and credential values: far longer than any platform issues.
MAX_ID_CHARS = 255
MAX_URL_CHARS = 2_048
MAX_CREDENTIAL_CHARS = 4_096
MAX_CREDENTIALS = 20


def text(value: str | None, field: str, limit: int, *, multiline: bool = False, required: bool = False) -> None:
    """A string of at most `limit` characters, without control characters (tabs and line breaks allowed
    when `multiline`); `required` refuses an empty or blank one too."""
    if value is None:
        if required:
            raise BadInput(f"{field} is required", field=field)
        return
    if len(value) > limit:
        raise BadInput(f"{field} must be at most {limit:,} characters (it has {len(value):,})", field=field)
    if (_CONTROL_IN_MULTILINE if multiline else _CONTROL).search(value):
        raise BadInput(f"{field} must not contain control characters", field=field)
    if required and not value.strip():
        raise BadInput(f"{field} must not be empty", field=field)


def items(values: Sequence[Any] | None, field: str, limit: int) -> None:
    if values is not None and len(values) > limit:
        raise BadInput(f"{field} may hold at most {limit:,} items (it has {len(values):,})", field=field)


def ids(settings: Settings, values: Sequence[str] | None, field: str) -> None:
    items(values, field, settings.max_input_items)
    for value in values or ():
        text(value, field, MAX_ID_CHARS, required=True)


class _Connect(Protocol):
    @property
    def platform(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def store_url(self) -> str: ...
    @property
    def credentials(self) -> Any: ...


def connect_input(settings: Settings, value: _Connect) -> None:
    text(value.name, "name", settings.max_name_chars, required=True)
    text(value.platform, "platform", settings.max_name_chars, required=True)
    text(value.store_url, "storeUrl", MAX_URL_CHARS, required=True)
    if isinstance(value.credentials, Mapping):
        items(list(value.credentials), "credentials", MAX_CREDENTIALS)
        for key, secret in value.credentials.items():
            if isinstance(secret, str):
                text(secret, f"credentials.{key}", MAX_CREDENTIAL_CHARS)


class _Attribute(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def values(self) -> Sequence[str]: ...


class _Edit(Protocol):
    @property
    def title(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def tags(self) -> Sequence[str] | None: ...
    @property
    def attributes(self) -> Sequence[_Attribute] | None: ...


def product_edit(settings: Settings, value: _Edit) -> None:
    text(value.title, "input.title", settings.max_title_chars)
    text(value.description, "input.description", settings.max_description_chars, multiline=True)
    items(value.tags, "input.tags", settings.max_tags)
    for tag in value.tags or ():
        text(tag, "input.tags", settings.max_tag_chars, required=True)
    items(value.attributes, "input.attributes", settings.max_attributes)
    for attribute in value.attributes or ():
        text(attribute.name, "input.attributes", settings.max_attribute_chars, required=True)
        items(attribute.values, "input.attributes", settings.max_tags)
        for item in attribute.values:
            text(item, "input.attributes", settings.max_attribute_chars)
