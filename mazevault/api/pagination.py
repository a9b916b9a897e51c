"""``{"data": [...], "pagination": {"page", "per_page", "total"}}``; ``per_page`` at most 100.

``total`` is counted, never estimated, but the count stops at ``COUNT_LIMIT`` (1,000) matching
items. An exact ``COUNT(*)`` visits every matching row: 100-800 ms over a million certificates in
PostgreSQL, and still 10-50 ms for a count that stops at 10,000 when the filter (a common
substring, several columns at once) makes it visit the table. Stopping at 1,001 keeps every
count within a few milliseconds whatever the table size and filter (bench/list_scale.py). When
more items match, ``total`` is ``COUNT_LIMIT`` and ``"total_capped": true`` is added: "at least
this many", the convention of Elasticsearch's ``track_total_hits``. Up to the limit the block is
exactly ``{page, per_page, total}``. A first page with room to spare needs no count at all: its
length is the total.

A page past the end is an empty ``data`` list, not an error. Pages are ``OFFSET``/``LIMIT`` in the
list's order, which every list makes total (certificates: ``-requested_at, -id``). A deep page
(offset of ``DEFERRED_JOIN_OFFSET`` or more) first reads only the primary keys of its rows —
PostgreSQL skips the offset inside an index that ends with the order columns and the key,
without visiting the table — then loads those rows. Skipping still costs time in proportion to
the offset (about 0.25 s per million rows skipped on the benchmark machine).
"""
from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

COUNT_LIMIT = 1_000
DEFERRED_JOIN_OFFSET = 1_000
MAX_OFFSET = 2**62  # beyond any table; keeps absurd page numbers within the databases' integer range


def _leading_order_field(queryset) -> str:
    """The model field the queryset is ordered by first (``pk`` when that is not a plain column)."""
    ordering = queryset.query.order_by or queryset.model._meta.ordering
    if ordering and isinstance(ordering[0], str):
        name = ordering[0].lstrip("-")
        if "__" not in name and name != "?":
            try:
                field = queryset.model._meta.get_field(name)
            except Exception:  # an annotation or an unknown name
                return "pk"
            if getattr(field, "concrete", False) and not field.is_relation:
                return name
    return "pk"


def _plain_rows(queryset) -> bool:
    """One result row per object: narrowing the select list changes neither what nor how many."""
    query = queryset.query
    return not (query.distinct or query.group_by is not None or any(
        getattr(a, "contains_aggregate", False) for a in query.annotations.values()))


class PagePagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "per_page"
    max_page_size = 100
    count_limit = COUNT_LIMIT

    def _int_param(self, request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: ["Must be a positive integer."]}) from None
        if value < 1:
            raise ValidationError({name: ["Must be a positive integer."]})
        return value

    def count(self, queryset) -> tuple[int, bool]:
        """(matching items counted up to ``count_limit``, whether more match).

        The rows counted carry the list's leading order column rather than the primary key: list
        indexes lead with the filter columns and continue with that column, so PostgreSQL can
        count from the index alone (an index-only scan) instead of visiting the table.
        """
        rows = queryset.order_by()
        if _plain_rows(queryset):
            rows = rows.values(_leading_order_field(queryset))
        counted = rows[:self.count_limit + 1].count()
        if counted > self.count_limit:
            return self.count_limit, True
        return counted, False

    def page_rows(self, queryset, offset: int) -> list:
        if offset < DEFERRED_JOIN_OFFSET or not _plain_rows(queryset):
            return list(queryset[offset:offset + self.per_page])
        keys = list(queryset.values_list("pk", flat=True)[offset:offset + self.per_page])
        loaded = {obj.pk: obj for obj in queryset.filter(pk__in=keys)}
        return [loaded[key] for key in keys if key in loaded]

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.per_page = min(self._int_param(request, "per_page", self.page_size), self.max_page_size)
        self.page_number = self._int_param(request, "page", 1)
        offset = (self.page_number - 1) * self.per_page
        if offset > MAX_OFFSET:
            self.total, self.total_capped = self.count(queryset)
            return []
        if offset == 0:
            rows = self.page_rows(queryset, 0)
            if len(rows) < self.per_page:  # the whole list fits on this page
                self.total, self.total_capped = len(rows), False
            else:
                self.total, self.total_capped = self.count(queryset)
            return rows
        self.total, self.total_capped = self.count(queryset)
        if not self.total_capped and offset >= self.total:
            return []
        return self.page_rows(queryset, offset)

    def get_paginated_response(self, data) -> Response:
        pagination = {"page": self.page_number, "per_page": self.per_page, "total": self.total}
        if self.total_capped:
            pagination["total_capped"] = True
        return Response({"data": data, "pagination": pagination})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["data", "pagination"],
            "properties": {
                "data": schema,
                "pagination": {
                    "type": "object",
                    "required": ["page", "per_page", "total"],
                    "properties": {
                        "page": {"type": "integer"}, "per_page": {"type": "integer"},
                        "total": {"type": "integer", "description": f"Matching items, counted up to {COUNT_LIMIT}."},
                        "total_capped": {"type": "boolean", "description":
                                         f"Present (true) when more than {COUNT_LIMIT} items match: "
                                         "`total` is then a lower bound."},
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {"name": "page", "required": False, "in": "query", "description": "Page number (from 1).",
             "schema": {"type": "integer", "minimum": 1}},
            {"name": "per_page", "required": False, "in": "query",
             "description": "Items per page (default 25); larger values are clamped to 100.",
             "schema": {"type": "integer", "minimum": 1}},
        ]
