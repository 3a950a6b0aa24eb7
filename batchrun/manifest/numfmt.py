"""Excel number formats: the text a cell shows for a number.

Covers what workbooks carry in practice: ``General``; digit placeholders ``0`` ``#`` ``?`` with
a decimal point, thousands separators and scaling commas (``#,##0.00``, ``0.0,,"M"``); percent;
scientific (``0.00E+00``, engineering ``##0.0E+0``); fractions (``# ?/?``, ``# ?/8``); literal
text (``"quoted"``, ``\\x``, currency ``[$€-407]``); up to four ``;`` sections and ``[>=100]``
conditions. Colours, fill (``*x``) and padding (``_x``) change how a cell looks, not what it says:
colours and fills are dropped, padding is a space, and the text is trimmed. Dates and times never
get here (openpyxl turns cells with date formats into date values); a number under a date format
it did not recognise is shown as General.

Rounding is Excel's: half away from zero, on the value taken to 15 significant digits (the
precision Excel keeps), so no binary noise such as ``23.310000000000002`` is ever shown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from functools import lru_cache

_DIGITS = "0#?"
_CONDITION = re.compile(r"(<=|>=|<>|<|>|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_DATE_CODES = set("yYmMdDhHsS")
# Enough digits for any double written out in full with its decimals: scaling and rounding
# never lose a digit, and Excel's own rounding (half away from zero) applies.
_EXACT = Context(prec=400, rounding=ROUND_HALF_UP)


def general(value: int | float) -> str:
    """Excel's General: integers as written, other numbers to 15 significant digits, scientific
    (``1E+20``, ``1E-05``) only for very large or very small magnitudes."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}".replace("e", "E")


def format_number(value: int | float, number_format: str | None) -> str:
    """The text Excel shows for ``value`` under ``number_format`` (see the module's notes)."""
    if not number_format or number_format == "General":
        return general(value)
    if isinstance(value, float) and not math.isfinite(value):
        return general(value)
    try:
        sections = _compile(number_format)
        section, signed = _choose(sections, value)
        text = section.render(abs(value)) if section is not None else ""
    except (ArithmeticError, ValueError):  # a format Excel itself would refuse: show General
        return general(value)
    if signed and value < 0 and text:
        text = "-" + text
    return text.strip()


# -- parsing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # digit, point, comma, percent, exp, slash, literal, general, text
    text: str


@dataclass(frozen=True, slots=True)
class _Condition:
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        b = self.bound
        match self.op:
            case "<":
                return value < b
            case "<=":
                return value <= b
            case ">":
                return value > b
            case ">=":
                return value >= b
            case "=":
                return value == b
            case _:
                return value != b


@dataclass(frozen=True)
class _Section:
    tokens: tuple[_Token, ...]
    condition: _Condition | None
    dated: bool  # holds date or time codes: not a number format

    def render(self, value: int | float) -> str:
        """``value`` (never negative) through this section; the caller adds any sign."""
        tokens = self.tokens
        kinds = [t.kind for t in tokens]
        if self.dated or ("digit" not in kinds and "general" not in kinds and "text" in kinds):
            return general(value)  # "@" alone: a number typed into a Text cell shows as General
        if "digit" not in kinds:
            return "".join(
                general(value) if t.kind == "general" else t.text
                for t in tokens
                if t.kind not in ("comma", "point", "exp")
            )
        exact = _decimal(value)
        percents = kinds.count("percent")
        scaled = exact.scaleb(2 * percents - 3 * _scaling_commas(tokens), _EXACT)
        if "slash" in kinds and _fraction_slash(tokens) is not None:
            return _render_fraction(tokens, scaled)
        if "exp" in kinds:
            return _render_scientific(tokens, scaled)
        return _render_fixed(tokens, scaled)


def _decimal(value: int | float) -> Decimal:
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(f"{value:.15g}")


@lru_cache(maxsize=512)
def _compile(number_format: str) -> tuple[_Section | None, ...]:
    """The format's sections (None for an empty one, which hides the value)."""
    return tuple(_section(text) for text in _split_sections(number_format)[:4])


def _split_sections(text: str) -> list[str]:
    sections, start, k = [], 0, 0
    while k < len(text):
        c = text[k]
        if c == '"':
            end = text.find('"', k + 1)
            k = len(text) if end < 0 else end + 1
            continue
        if c in "\\_*":
            k += 2
            continue
        if c == "[":
            end = text.find("]", k + 1)
            k = len(text) if end < 0 else end + 1
            continue
        if c == ";":
            sections.append(text[start:k])
            start = k + 1
        k += 1
    sections.append(text[start:])
    return sections


def _section(text: str) -> _Section | None:
    if not text:
        return None
    tokens: list[_Token] = []
    condition = None
    dated = False
    seen_point = False
    k = 0
    while k < len(text):
        c = text[k]
        if c == '"':
            end = text.find('"', k + 1)
            end = len(text) if end < 0 else end
            tokens.append(_Token("literal", text[k + 1 : end]))
            k = end + 1
            continue
        if c == "\\":
            tokens.append(_Token("literal", text[k + 1 : k + 2]))
            k += 2
            continue
        if c == "_":
            tokens.append(_Token("literal", " "))
            k += 2
            continue
        if c == "*":
            k += 2  # repeat the next character to fill the cell: nothing to read
            continue
        if c == "[":
            end = text.find("]", k + 1)
            end = len(text) if end < 0 else end
            inner = text[k + 1 : end]
            k = end + 1
            match = _CONDITION.fullmatch(inner.strip())
            if match:
                condition = _Condition(match.group(1), float(match.group(2)))
            elif inner.startswith("$"):
                symbol = inner[1:].split("-", 1)[0]
                if symbol:
                    tokens.append(_Token("literal", symbol))
            elif inner and inner[0] in _DATE_CODES and set(inner) <= _DATE_CODES:
                dated = True  # elapsed time, [h] [mm] [ss]
            continue  # colours, locales and the like change nothing in the text
        if text[k : k + 7].lower() == "general":
            tokens.append(_Token("general", ""))
            k += 7
            continue
        if text[k : k + 5].upper() == "AM/PM" or text[k : k + 3].upper() == "A/P":
            dated = True
            k += 5 if text[k : k + 5].upper() == "AM/PM" else 3
            continue
        if c in _DIGITS:
            tokens.append(_Token("digit", c))
        elif c == "." and not seen_point:
            seen_point = True
            tokens.append(_Token("point", "."))
        elif c == ",":
            tokens.append(_Token("comma", ","))
        elif c == "%":
            tokens.append(_Token("percent", "%"))
        elif c in "eE" and text[k + 1 : k + 2] in ("+", "-"):
            tokens.append(_Token("exp", text[k + 1]))
            k += 2
            continue
        elif c == "/":
            tokens.append(_Token("slash", "/"))
        elif c == "@":
            tokens.append(_Token("text", ""))
        elif c in _DATE_CODES:
            dated = True
            tokens.append(_Token("literal", c))
        else:
            tokens.append(_Token("literal", c))
        k += 1
    return _Section(tuple(tokens), condition, dated)


def _choose(sections: tuple[_Section | None, ...], value: float) -> tuple[_Section | None, bool]:
    """The section for ``value`` and whether a minus sign goes in front of it."""
    conditional = any(s is not None and s.condition is not None for s in sections[:2])
    if conditional:
        numeric = sections[:3]
        for k, s in enumerate(numeric):
            if s is None:
                continue
            if s.condition is None or s.condition.holds(value):
                return s, True
            if k == len(numeric) - 1:
                return s, True
        return None, True
    n = len(sections)
    if n == 1 or (value > 0 or (value == 0 and n == 2)):
        return sections[0], n == 1
    if value < 0:
        return sections[1], False
    return sections[2], False


# -- rendering ------------------------------------------------------------------------------------


def _scaling_commas(tokens: tuple[_Token, ...]) -> int:
    """Commas right after the last integer placeholder: each divides by 1000."""
    count = 0
    for k, t in enumerate(tokens):
        if t.kind != "comma" or k == 0:
            continue
        before = tokens[k - 1]
        if before.kind not in ("digit", "comma"):
            continue
        rest = tokens[k + 1 :]
        nxt = next((r for r in rest if r.kind != "comma"), None)
        if nxt is None or nxt.kind != "digit":
            count += 1
    return count


def _grouped(tokens: tuple[_Token, ...], upto: int) -> bool:
    """A comma between two digit placeholders of the integer part: thousands separators."""
    digits = [k for k in range(upto) if tokens[k].kind == "digit"]
    return any(
        tokens[k].kind == "comma" and digits and digits[0] < k < digits[-1] for k in range(upto)
    )


def _fill_integer(
    tokens: tuple[_Token, ...], places: list[int], digits: str, group: bool
) -> dict[int, str]:
    """What each integer placeholder shows: digits from the right, the leftmost placeholder
    taking any left over; ``0`` pads with zeros, ``?`` with a space, ``#`` with nothing."""
    out: dict[int, str] = {}
    remaining = digits
    for n, k in enumerate(reversed(places)):
        last = n == len(places) - 1
        if remaining:
            take = remaining if last else remaining[-1]
            remaining = "" if last else remaining[:-1]
            out[k] = take
        else:
            out[k] = {"0": "0", "?": " ", "#": ""}[tokens[k].text]
    if group:
        count = 0
        for k in reversed(places):
            text = out[k]
            pieces = []
            for ch in reversed(text):
                if ch.isdigit():
                    if count and count % 3 == 0:
                        pieces.append(",")
                    count += 1
                pieces.append(ch)
            out[k] = "".join(reversed(pieces))
    return out


def _fill_fraction(tokens: tuple[_Token, ...], places: list[int], digits: str) -> dict[int, str]:
    """Decimal places, left to right; trailing zeros under ``#`` vanish, under ``?`` a space."""
    out = {k: digits[n] for n, k in enumerate(places)}
    for k in reversed(places):
        if out[k] != "0" or tokens[k].text == "0":
            break
        out[k] = "" if tokens[k].text == "#" else " "
    return out


def _split_digits(number: Decimal, decimals: int) -> tuple[str, str]:
    rounded = number.quantize(Decimal(1).scaleb(-decimals), context=_EXACT)
    whole, _, frac = f"{rounded:f}".partition(".")
    return ("" if whole == "0" else whole), frac.ljust(decimals, "0")


def _assemble(tokens: tuple[_Token, ...], parts: dict[int, str], skip: set[int]) -> str:
    out = []
    for k, t in enumerate(tokens):
        if k in parts:
            out.append(parts[k])
        elif k in skip or t.kind in ("comma", "exp", "text"):
            continue
        else:
            out.append(t.text)
    return "".join(out)


def _render_fixed(tokens: tuple[_Token, ...], number: Decimal) -> str:
    point = next((k for k, t in enumerate(tokens) if t.kind == "point"), len(tokens))
    int_places = [k for k in range(point) if tokens[k].kind == "digit"]
    frac_places = [k for k in range(point + 1, len(tokens)) if tokens[k].kind == "digit"]
    whole, frac = _split_digits(number, len(frac_places))
    parts = _fill_fraction(tokens, frac_places, frac)
    if int_places:
        parts.update(_fill_integer(tokens, int_places, whole, _grouped(tokens, point)))
    elif whole:
        parts[point] = whole + "."  # ".00" still shows the integer digits a number has
    return _assemble(tokens, parts, set())


def _render_scientific(tokens: tuple[_Token, ...], number: Decimal) -> str:
    exp_at = next(k for k, t in enumerate(tokens) if t.kind == "exp")
    point = next((k for k in range(exp_at) if tokens[k].kind == "point"), exp_at)
    int_places = [k for k in range(point) if tokens[k].kind == "digit"]
    frac_places = [k for k in range(point + 1, exp_at) if tokens[k].kind == "digit"]
    exp_places = [k for k in range(exp_at + 1, len(tokens)) if tokens[k].kind == "digit"]
    width = len(int_places)
    step = width if width > 1 and any(tokens[k].text == "#" for k in int_places) else 0
    if number == 0:
        exponent = 0
    elif step:
        exponent = (number.adjusted() // step) * step
    else:
        exponent = number.adjusted() - (width - 1) if width else number.adjusted() + 1
    whole, frac = _split_digits(number.scaleb(-exponent, _EXACT), len(frac_places))
    if number != 0 and len(whole) > (step or width):  # 9.995 -> 10.00: one place further
        exponent += step or 1
        whole, frac = _split_digits(number.scaleb(-exponent, _EXACT), len(frac_places))
    parts = _fill_fraction(tokens, frac_places, frac)
    parts.update(_fill_integer(tokens, int_places, whole, False) if int_places else {})
    sign = "-" if exponent < 0 else ("+" if tokens[exp_at].text == "+" else "")
    parts[exp_at] = "E" + sign
    if exp_places:
        shown = str(abs(exponent))
        parts.update(_fill_integer(tokens, exp_places, "" if shown == "0" else shown, False))
    return _assemble(tokens, parts, set())


def _fraction_slash(tokens: tuple[_Token, ...]) -> int | None:
    for k, t in enumerate(tokens):
        if t.kind == "slash" and k > 0 and tokens[k - 1].kind == "digit":
            return k
    return None


def _render_fraction(tokens: tuple[_Token, ...], number: Decimal) -> str:
    slash = _fraction_slash(tokens)
    assert slash is not None
    start = slash
    while start > 0 and tokens[start - 1].kind == "digit":
        start -= 1
    num_places = list(range(start, slash))
    end = slash + 1
    while end < len(tokens) and (
        tokens[end].kind == "digit"
        or (tokens[end].kind == "literal" and tokens[end].text.isdigit())
    ):
        end += 1
    den_tokens = tokens[slash + 1 : end]
    den_places = [k for k in range(slash + 1, end) if tokens[k].kind == "digit"]
    int_places = [k for k in range(start) if tokens[k].kind == "digit"]
    value = Fraction(number)
    whole = int(value) if int_places else 0
    rest = value - whole
    fixed = "".join(t.text for t in den_tokens)
    if fixed.isdigit() and int(fixed) > 0:
        denominator = int(fixed)
        numerator = int((rest * denominator + Fraction(1, 2)) // 1)
    else:
        limit = 10 ** max(1, len(den_places)) - 1
        approx = rest.limit_denominator(limit)
        numerator, denominator = approx.numerator, approx.denominator
    if int_places and numerator == denominator:
        whole, numerator = whole + 1, 0
    parts: dict[int, str] = {}
    skip: set[int] = set()
    between: set[int] = set()  # what stands between the whole part and the fraction (a space)
    if int_places:
        shown = str(whole) if whole else ""
        if not shown and numerator == 0:
            shown = "0"
        parts.update(_fill_integer(tokens, int_places, shown, _grouped(tokens, start)))
        between = {k for k in range(int_places[-1] + 1, start) if tokens[k].kind == "literal"}
    if numerator == 0 and int_places:
        # A whole number: the fraction's place is left blank.
        parts.update({k: "" for k in num_places})
        parts[slash] = ""
        skip.update(range(slash + 1, end), between)
        return _assemble(tokens, parts, skip)
    num_text = str(numerator)
    parts.update(_fill_integer(tokens, num_places, num_text, False))
    if not (fixed.isdigit() and int(fixed) > 0):
        den_text = str(denominator)
        for n, k in enumerate(den_places):
            if n < len(den_text):
                parts[k] = den_text[n] if n < len(den_places) - 1 else den_text[n:]
            else:
                parts[k] = {"0": "0", "?": " ", "#": ""}[tokens[k].text]
    if int_places and not "".join(parts[k] for k in int_places).strip():
        skip.update(between)  # "# ?/?" shows 0.75 as "3/4", without the space before it
    return _assemble(tokens, parts, skip)
