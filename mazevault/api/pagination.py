"""``{"data": [...], "pagination": {"page", "per_page", "total"}}``; ``per_page`` at most 100."""
from __future__ import annotations

from django.core.paginator import InvalidPage
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class PagePagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "per_page"
    max_page_size = 100

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

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.per_page = min(self._int_param(request, "per_page", self.page_size), self.max_page_size)
        self.page_number = self._int_param(request, "page", 1)
        paginator = self.django_paginator_class(queryset, self.per_page)
        try:
            self.page = paginator.page(self.page_number)
        except InvalidPage:
            if self.page_number == 1:
                raise
            self.total = paginator.count
            self.page = None
            return []
        self.total = paginator.count
        return list(self.page)

    def get_paginated_response(self, data) -> Response:
        return Response({"data": data, "pagination": {"page": self.page_number, "per_page": self.per_page,
                                                      "total": self.total}})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["data", "pagination"],
            "properties": {
                "data": schema,
                "pagination": {
                    "type": "object",
                    "required": ["page", "per_page", "total"],
                    "properties": {"page": {"type": "integer"}, "per_page": {"type": "integer"},
                                   "total": {"type": "integer"}},
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
