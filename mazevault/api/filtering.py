"""List filtering that refuses what it does not understand.

django-filter ignores query parameters it has no filter for, so ``?san=…`` on a list without that
filter, or a misspelt ``?serial_numbr=…``, silently returns everything: a trap for scripts that
then act on the whole list. Here a list request (``action == "list"``) whose query names a
parameter that is neither one of the list's filters, nor pagination (``page``, ``per_page``), nor
``format`` is answered 400 ``VALIDATION_ERROR`` naming the parameter and listing the accepted
ones. Detail views are left alone (their query parameters, like ``?format=`` on exports, are
their own business).
"""
from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend

from mazevault.errors import ValidationFailed

ALWAYS_ALLOWED = frozenset({"format"})


class StrictFilterBackend(DjangoFilterBackend):
    def allowed_parameters(self, request, queryset, view) -> set[str]:
        allowed = set(ALWAYS_ALLOWED)
        paginator = getattr(view, "paginator", None)
        for attribute in ("page_query_param", "page_size_query_param"):
            name = getattr(paginator, attribute, None)
            if name:
                allowed.add(name)
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            # The form's field names are the query parameters (a range filter has two, say).
            filterset = filterset_class(data=None, queryset=queryset, request=request)
            allowed.update(filterset.form.fields)
        return allowed

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) == "list":
            allowed = self.allowed_parameters(request, queryset, view)
            unknown = sorted(name for name in request.query_params if name not in allowed)
            if unknown:
                raise ValidationFailed(
                    f"Unknown query parameter {unknown[0]!r}; this list accepts: {', '.join(sorted(allowed))}.",
                    details={"field": unknown[0], "unknown": unknown, "allowed": sorted(allowed)})
        return super().filter_queryset(request, queryset, view)
