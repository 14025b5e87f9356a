"""Product identifiers: classify barcodes by shape and validate their check digits.

An identifier that fails its check digit is never dropped: it is kept as raw text, and the caller
gets a warning to record beside it (stores hold plenty of hand-typed barcodes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = re.compile(r"^\d+$")


def gs1_check_digit_ok(code: str) -> bool:
    """True when a GTIN-8/12/13/14 (UPC, EAN, GTIN) has a valid GS1 mod-10 check digit."""
    if not _DIGITS.match(code) or len(code) not in (8, 12, 13, 14):
        return False
    digits = [int(c) for c in code]
    body, check = digits[:-1], digits[-1]
    # Weights alternate 3,1,3,... starting from the digit next to the check digit.
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def isbn10_ok(code: str) -> bool:
    """True when an ISBN-10 (last character may be X) has a valid mod-11 check digit."""
    if not re.match(r"^\d{9}[\dXx]$", code):
        return False
    total = sum((10 - i) * int(c) for i, c in enumerate(code[:9]))
    last = 10 if code[9] in "Xx" else int(code[9])
    return (total + last) % 11 == 0


def normalize_code(raw: str) -> str:
    """Strip the spaces and dashes people type into barcodes."""
    return re.sub(r"[\s-]", "", raw.strip())


@dataclass(frozen=True)
class Classified:
    """A barcode sorted into its identifier kind, with a warning when it does not validate."""

    kind: str  # "upc" | "ean" | "isbn" | "gtin"
    value: str
    warning: str | None = None


def classify_barcode(raw: str) -> Classified:
    """Sort a free-form barcode into UPC / EAN / ISBN / GTIN by its shape.

    12 digits: UPC-A; 13 digits starting 978/979: ISBN-13; other 13 digits: EAN-13; 8 or 14 digits:
    GTIN; 10 characters that pass ISBN-10: ISBN. Anything else is kept as a GTIN-shaped raw value
    with a warning.
    """
    code = normalize_code(raw)
    if _DIGITS.match(code) and len(code) == 12:
        kind = "upc"
    elif _DIGITS.match(code) and len(code) == 13:
        kind = "isbn" if code.startswith(("978", "979")) else "ean"
    elif _DIGITS.match(code) and len(code) in (8, 14):
        kind = "gtin"
    elif len(code) == 10 and re.match(r"^\d{9}[\dXx]$", code):
        ok = isbn10_ok(code)
        return Classified("isbn", code, None if ok else f"ISBN-10 {code!r} has an invalid check digit")
    else:
        return Classified("gtin", raw.strip(), f"barcode {raw!r} has no recognised GTIN/UPC/EAN/ISBN shape")
    if gs1_check_digit_ok(code):
        return Classified(kind, code)
    return Classified(kind, code, f"{kind.upper()} {code!r} has an invalid check digit")


def validate_identifier(kind: str, raw: str) -> str | None:
    """Return a warning when `raw` is not a valid `kind` identifier, None when it is (or has no check)."""
    code = normalize_code(raw)
    if kind in ("upc", "ean", "gtin"):
        return None if gs1_check_digit_ok(code) else f"{kind.upper()} {raw!r} has an invalid check digit"
    if kind == "isbn":
        if len(code) == 10:
            return None if isbn10_ok(code) else f"ISBN {raw!r} has an invalid check digit"
        ok = len(code) == 13 and code.startswith(("978", "979")) and gs1_check_digit_ok(code)
        return None if ok else f"ISBN {raw!r} has an invalid check digit"
    return None
