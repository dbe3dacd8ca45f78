"""A fast path for DRF serializers: the same declarations, compiled once into plain functions.

DRF validates and represents field by field through a deep copy of every declared field per serializer instance,
`run_validation`, `validate_empty_values`, validator lists and error bookkeeping. For a 2 KB upstream payload that is
most of a request's CPU (profiled: about 60%). The serializers stay the single source of truth for shapes, the
OpenAPI schema and error messages; this module only reads their declarations and compiles them:

    validate(SerializerClass, payload)   -> the same value as `SerializerClass(data=payload).validated_data`
    represent(SerializerClass, instance) -> the same value as `SerializerClass(instance).data`

The compiled validator accepts a subset of what DRF accepts: the common case of already well-typed JSON (an `int`
for an IntegerField, a `str` for a CharField, ...). Anything else (a number sent as a string, a missing required
key, a value out of range) raises `Fallback`, and the caller runs DRF itself, which either accepts the value with
its own coercions or produces its exact error details. So the fast path can never accept what DRF would refuse, and
an invalid payload is still explained by DRF. Fields the compiler does not know (relations, method fields, custom
fields) and serializers with `validate()`/`validate_<field>()` hooks or Meta validators are not compiled: they
always use DRF. `tests/api/test_fastpath.py` checks the equivalence on generated payloads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import fields as f
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

__all__ = ["Fallback", "represent", "validate"]

Converter = Callable[[Any], Any]
_EMPTY = f.empty


class Fallback(Exception):
    """The fast path cannot vouch for this value: let DRF decide (and explain)."""


def validate(serializer_class: type[serializers.Serializer], payload: Any) -> Any:
    """`validated_data` for a valid payload; raises `Fallback` when DRF must decide (or when it is invalid)."""
    validator = _validator(serializer_class)
    if validator is None:
        raise Fallback
    return validator(payload)


def represent(serializer_class: type[serializers.Serializer], instance: Any) -> Any:
    """`serializer_class(instance).data`, compiled when possible."""
    representer = _representer(serializer_class)
    if representer is not None:
        try:
            return representer(instance)
        except Fallback:
            pass
    return serializer_class(instance).data


# --- Validation --------------------------------------------------------------------------------------------------

# Fields whose own `run_validation` is safe to call on the (unbound, shared) declared field: they read only their
# own configuration, never the parent serializer or the request context.
_DELEGATED_INPUT = (
    f.DecimalField,
    f.DateTimeField,
    f.DateField,
    f.TimeField,
    f.ChoiceField,
    f.BooleanField,
    f.UUIDField,
)
_CHAR_FIELDS = (f.CharField, f.RegexField, f.EmailField, f.URLField, f.SlugField)
# CharField adds these two; the compiled check does the same job at C speed.
_CHAR_BUILTIN_VALIDATORS = ("ProhibitNullCharactersValidator", "ProhibitSurrogateCharactersValidator")


@cache
def _validator(serializer_class: type[serializers.Serializer]) -> Converter | None:
    return _compile_serializer_input(serializer_class())


def _has_hooks(serializer: serializers.Serializer) -> bool:
    cls = type(serializer)
    if cls.validate is not serializers.Serializer.validate:
        return True
    if any(hasattr(cls, f"validate_{name}") for name in serializer.fields):
        return True
    meta = getattr(cls, "Meta", None)
    return bool(getattr(meta, "validators", None))


def _compile_serializer_input(serializer: serializers.Serializer) -> Converter | None:
    """One generated function per serializer: a field of a simple kind (an integer or a string with no extra
    validators) is checked inline, anything else calls its compiled converter. A nested list of small objects
    (an upstream's `items`) is where the time goes, and every Python call saved there counts."""
    if _has_hooks(serializer):
        return None
    namespace: dict[str, Any] = {"Mapping": Mapping, "Fallback": Fallback, "EMPTY": _EMPTY}
    body = ["def run(data):", "    if not isinstance(data, Mapping):", "        raise Fallback", "    out = {}"]
    for i, (name, field) in enumerate(serializer.fields.items()):
        if field.read_only:
            continue
        if field.source in (None, "*") or "." in field.source:
            return None
        body += [f"    value = data.get({name!r}, EMPTY)", "    if value is EMPTY:"]
        default = field.default
        if field.required or default is _EMPTY or getattr(default, "requires_context", False):
            body.append("        raise Fallback")  # DRF: a `required` error, or a default that needs the serializer
        else:
            namespace[f"default{i}"] = default
            body.append(
                f"        out[{field.source!r}] = default{i}()"
                if callable(default)
                else f"        out[{field.source!r}] = default{i}"
            )
        body += [
            "    elif value is None:",
            f"        out[{field.source!r}] = None" if field.allow_null else "        raise Fallback",
        ]
        convert = _compile_input_type(field)
        if convert is None:
            return None
        namespace[f"convert{i}"] = convert
        target = f"out[{field.source!r}]"
        body += _inline_checks(field, target) or []
        body += ["    else:", f"        {target} = convert{i}(value)"]
    body.append("    return out")
    exec("\n".join(body), namespace)  # noqa: S102 - the source is built here from field declarations only
    run: Converter = namespace["run"]
    return run


def _inline_checks(field: Any, target: str) -> list[str] | None:
    """Source lines (`elif` branches) that accept the common well-typed value of the simplest fields inline; the
    generated `else` hands anything else to the field's compiled converter. None: no inline form."""
    if type(field) is f.IntegerField:
        bounds = _bounds(field)
        if bounds is None:
            return None
        return [f"    elif type(value) is int{bounds}:", f"        {target} = value"]
    if type(field) is f.CharField and not _extra_char_validators(field):
        lines = ["    elif type(value) is str and value.isascii() and '\\x00' not in value:"]
        if field.trim_whitespace:
            lines.append("        value = value.strip()")
        if not field.allow_blank:
            lines += ["        if not value:", "            raise Fallback"]
        return [*lines, f"        {target} = value"]
    return None


def _bounds(field: Any) -> str | None:
    """` and lo <= value <= hi` from the field's min/max validators; None if it has other validators."""
    parts = []
    for validator in field.validators:
        limit = getattr(validator, "limit_value", None)
        if type(validator).__name__ == "MinValueValidator" and type(limit) is int:
            parts.append(f" and value >= {limit}")
        elif type(validator).__name__ == "MaxValueValidator" and type(limit) is int:
            parts.append(f" and value <= {limit}")
        else:
            return None
    return "".join(parts)


def _extra_char_validators(field: Any) -> list[Any]:
    return [v for v in field.validators if type(v).__name__ not in _CHAR_BUILTIN_VALIDATORS]


def _compile_input(field: Any) -> Converter | None:
    convert = _compile_input_type(field)
    if convert is None or not field.allow_null:
        return convert  # every type converter refuses None by itself (a delegated field applies its own rule)

    def nullable(value: Any) -> Any:
        return None if value is None else convert(value)

    return nullable


def _compile_input_type(field: Any) -> Converter | None:
    if isinstance(field, serializers.ListSerializer):
        return _list_input(field, _compile_input(field.child))
    if isinstance(field, serializers.Serializer):
        return _compile_serializer_input(field)
    kind = type(field)
    if kind is f.IntegerField:
        return _with_validators(field, _integer)
    if kind is f.FloatField:
        return _with_validators(field, _float)
    if kind in _CHAR_FIELDS:
        return _char_input(field)
    if kind is f.ListField:
        child = _compile_input(field.child)
        return _list_input(field, child) if child is not None else None
    if kind is f.DictField:
        child = _compile_input(field.child)
        return _dict_input(field, child) if child is not None else None
    if kind in _DELEGATED_INPUT:
        return _delegate_input(field)
    return None


def _integer(value: Any) -> int:
    if type(value) is not int:  # bool is not int here; "7" and 7.0 are DRF's to coerce
        raise Fallback
    return value


def _float(value: Any) -> float:
    if type(value) is not float and type(value) is not int:
        raise Fallback
    result = float(value)
    if not math.isfinite(result):
        raise Fallback
    return result


def _with_validators(field: Any, convert: Converter, *, skip: tuple[str, ...] = ()) -> Converter:
    validators = [v for v in field.validators if type(v).__name__ not in skip]
    if any(getattr(v, "requires_context", False) for v in validators):
        return _delegate_input(field)
    if not validators:
        return convert

    def checked(value: Any) -> Any:
        result = convert(value)
        for validator in validators:
            try:
                validator(result)  # context validators were delegated above
            except (ValidationError, DjangoValidationError):
                raise Fallback from None
        return result

    return checked


def _char_input(field: Any) -> Converter:
    allow_blank, trim = field.allow_blank, field.trim_whitespace

    def char(value: Any) -> str:
        if type(value) is not str:
            raise Fallback  # numbers are DRF's to coerce
        text = value.strip() if trim else value
        if not text:
            if allow_blank:
                return ""
            raise Fallback
        if "\x00" in text:
            raise Fallback
        try:
            text.encode("utf-8")  # lone surrogates cannot be encoded: DRF refuses them
        except UnicodeEncodeError:
            raise Fallback from None
        return text

    return _with_validators(field, char, skip=_CHAR_BUILTIN_VALIDATORS)


def _list_input(field: Any, child: Converter | None) -> Converter | None:
    if child is None:
        return None
    allow_empty = getattr(field, "allow_empty", True)
    max_length = getattr(field, "max_length", None)
    min_length = getattr(field, "min_length", None)

    def items(value: Any) -> list[Any]:
        if type(value) is not list:
            raise Fallback
        if (not allow_empty and not value) or (max_length is not None and len(value) > max_length):
            raise Fallback
        if min_length is not None and len(value) < min_length:
            raise Fallback
        return [child(item) for item in value]

    return items


def _dict_input(field: Any, child: Converter) -> Converter:
    allow_empty = field.allow_empty

    def mapping(value: Any) -> dict[str, Any]:
        if type(value) is not dict or (not allow_empty and not value):
            raise Fallback
        return {str(key): child(item) for key, item in value.items()}

    return mapping


def _delegate_input(field: Any) -> Converter:
    def delegated(value: Any) -> Any:
        try:
            return field.run_validation(value)
        except (ValidationError, DjangoValidationError, f.SkipField):
            raise Fallback from None

    return delegated


# --- Representation ----------------------------------------------------------------------------------------------

_SIMPLE_OUTPUT: dict[type[f.Field], Converter] = {
    f.IntegerField: int,
    f.FloatField: float,
    f.CharField: str,
    f.RegexField: str,
    f.EmailField: str,
    f.URLField: str,
    f.SlugField: str,
}
_DELEGATED_OUTPUT = (*_DELEGATED_INPUT,)


@cache
def _representer(serializer_class: type[serializers.Serializer]) -> Converter | None:
    return _compile_serializer_output(serializer_class())


def _compile_serializer_output(serializer: serializers.Serializer) -> Converter | None:
    """One generated function per serializer, like the validators: `int`/`str` fields converted inline."""
    namespace: dict[str, Any] = {"Mapping": Mapping, "Fallback": Fallback}
    body = [
        "def run(instance):",
        "    if type(instance) is not dict and not isinstance(instance, Mapping):",
        "        raise Fallback",
        "    out = {}",
        "    try:",
    ]
    for i, (name, field) in enumerate(serializer.fields.items()):
        if field.write_only:
            continue
        if field.source in (None, "*") or "." in field.source:
            return None
        convert = _compile_output(field)
        if convert is None:
            return None
        body.append(f"        value = instance[{field.source!r}]")
        if convert is int or convert is str:
            kind = convert.__name__
            body.append(f"        out[{name!r}] = value if value is None or type(value) is {kind} else {kind}(value)")
        else:
            namespace[f"convert{i}"] = convert
            body.append(f"        out[{name!r}] = None if value is None else convert{i}(value)")
    body += ["    except KeyError:", "        raise Fallback from None  # defaults and skipped fields: DRF's rules"]
    body.append("    return out")
    exec("\n".join(body), namespace)  # noqa: S102 - the source is built here from field declarations only
    run: Converter = namespace["run"]
    return run


def _compile_output(field: Any) -> Converter | None:
    if isinstance(field, serializers.ListSerializer):
        return _list_output(_compile_output(field.child), skip_none=False)
    if isinstance(field, serializers.Serializer):
        return _compile_serializer_output(field)
    kind = type(field)
    if kind in _SIMPLE_OUTPUT:
        return _SIMPLE_OUTPUT[kind]
    if kind is f.ListField:
        return _list_output(_compile_output(field.child), skip_none=True)
    if kind is f.DictField:
        return _dict_output(_compile_output(field.child))
    if kind in _DELEGATED_OUTPUT:
        return field.to_representation
    return None


def _list_output(child: Converter | None, *, skip_none: bool) -> Converter | None:
    if child is None:
        return None
    if skip_none:  # ListField passes None items through; a nested ListSerializer does not expect them
        return lambda value: [None if item is None else child(item) for item in value]
    return lambda value: [child(item) for item in value]


def _dict_output(child: Converter | None) -> Converter | None:
    if child is None:
        return None
    return lambda value: {str(key): None if item is None else child(item) for key, item in value.items()}
