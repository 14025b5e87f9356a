"""The simulator's subset of Shopify's search syntax for the `query` argument of `products`.

Supported: `field:value` terms with the comparators `:>`, `:>=`, `:<`, `:<=`; `OR` and `AND`
(AND implied between terms, and binding tighter than OR); quoted values; bare words (title search).
Fields: id, updated_at, created_at, status (comma list), vendor, product_type, handle, title, tag,
sku, barcode. Like Shopify, an *unquoted* timestamp is mis-parsed: the term matches nothing and a
warning is returned (for `extensions.search`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alana_shopify.catalog import SimProduct

_TOKEN = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|[^\s()]*)|\(|\)|\S+""")
_DATE_FIELDS = {"updated_at", "created_at"}


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str
    quoted: bool


@dataclass
class Search:
    """A parsed query: OR of AND-groups of terms (`None` terms match nothing)."""

    groups: list[list[Term | None]] = field(default_factory=list)
    free_text: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def matches(self, product: SimProduct) -> bool:
        if not self.groups:
            return True
        return any(all(t is not None and _match(t, product) for t in group) for group in self.groups)


def _date(value: str) -> datetime | None:
    if value == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse(text: str | None) -> Search:
    search = Search()
    if not text or not text.strip():
        return search
    group: list[Term | None] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("(", ")", "AND"):
            continue
        if token == "OR":
            search.groups.append(group)
            group = []
            continue
        if match.group(1) is None:
            group.append(Term("title", "", token.strip("'\""), True))
            search.free_text.append(token)
            continue
        name, op, raw = match.group(1).lower(), match.group(2) or "", match.group(3)
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
        value = raw[1:-1] if quoted else raw
        if name in _DATE_FIELDS and not quoted and ":" in value:
            # Shopify splits an unquoted timestamp at its colons: the term silently matches nothing.
            search.warnings.append({"field": name, "message": f"Invalid value '{value}' for {name}: quote dates."})
            group.append(None)
            continue
        if name in _DATE_FIELDS and _date(value) is None:
            search.warnings.append({"field": name, "message": f"Invalid date '{value}'."})
            group.append(None)
            continue
        group.append(Term(name, op, value, quoted))
    search.groups.append(group)
    return search


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    return bool(left == right)


def _match(term: Term, product: SimProduct) -> bool:
    name, value = term.field, term.value
    if name in _DATE_FIELDS:
        moment = _date(value)
        stamp = product.updated_at if name == "updated_at" else product.created_at
        return moment is not None and _compare(stamp, term.op, moment)
    if name == "id":
        digits = value.rsplit("/", 1)[-1]
        return digits.isdigit() and _compare(product.id, term.op, int(digits))
    if name == "status":
        return product.status.lower() in {v.strip().lower() for v in value.split(",")}
    if name == "tag":
        return value.lower() in {t.lower() for t in product.tags}
    if name in ("sku", "barcode"):
        return any(str(getattr(v, name) or "").lower() == value.lower() for v in product.variants)
    if name == "title":
        return value.lower() in product.title.lower()
    attribute = {
        "vendor": product.vendor,
        "product_type": product.product_type,
        "handle": product.handle,
    }.get(name)
    if attribute is None:
        return True  # Shopify ignores filters it does not know
    return attribute.lower() == value.lower()
