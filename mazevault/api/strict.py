"""JSON bodies are taken at their word: a number is not a string, "5" is not an integer, 0 is not a boolean,
and a string's maxLength counts the characters as sent.

DRF coerces such values (``{"name": 0}`` would create an object named "0"); the API answers 400
VALIDATION_ERROR naming the field instead, as the OpenAPI schema promises. Input serializers derive
from :class:`StrictSerializer` / :class:`StrictModelSerializer`; nested serializers that do as well
check their own fields, list and dict children are checked item by item.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# Most specific first: EmailField etc. are CharFields, and ChoiceField (enums, type-checked by its
# choices) is left alone.
_EXPECTED: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.UUIDField, (str,), "a string (UUID)"),
    (serializers.DateTimeField, (str,), "a string (date-time)"),
    (serializers.CharField, (str,), "a string"),
)


def type_error(field: serializers.Field, value: Any) -> Any:
    """The error detail for ``value`` given to ``field``, or None when its JSON type fits."""
    if value is None:
        return None  # allow_null decides
    for klass, types, name in _EXPECTED:
        if isinstance(field, klass):
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                return [f"Expected {name}, got {_json_type(value)}."]
            max_length = getattr(field, "max_length", None)
            if isinstance(value, str) and max_length is not None and len(value) > max_length:
                # DRF measures after trimming whitespace (which includes control characters such as
                # U+001E); the schema's maxLength is about the value as sent.
                return [f"Ensure this field has no more than {max_length} characters."]
            return None
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        errors = {index: error for index, item in enumerate(value) if (error := type_error(field.child, item))}
        return errors or None
    if isinstance(field, serializers.DictField) and isinstance(value, Mapping):
        errors = {key: error for key, item in value.items() if (error := type_error(field.child, item))}
        return errors or None
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class StrictTypesMixin:
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for field in self._writable_fields:
                if field.field_name in data:
                    error = type_error(field, data[field.field_name])
                    if error:
                        errors[field.field_name] = error
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictTypesMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictTypesMixin, serializers.ModelSerializer):
    pass
