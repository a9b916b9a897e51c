"""``insert(obj)``: INSERT one new model row with SQL compiled once per model and database.

``Model.objects.create`` compiles its INSERT on every call; on the issuance path that compilation
cost more CPU than the two statements themselves. This writes the same row: every concrete field,
``pre_save`` applied as Django applies it on an insert (``auto_now``/``auto_now_add`` included),
values prepared with ``get_db_prep_save``, and ``pre_save``/``post_save`` sent when something
listens to them. For models whose primary key is set before the insert (UUIDs here): nothing is
read back.
"""
from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.db.models import Model
from django.db.models.signals import post_save, pre_save

_SQL: dict[tuple[type, str], tuple[str, list]] = {}


def _prepared(model: type[Model], alias: str) -> tuple[str, list]:
    key = (model, alias)
    cached = _SQL.get(key)
    if cached is None:
        connection = connections[alias]
        qn = connection.ops.quote_name
        fields = [f for f in model._meta.concrete_fields if not f.generated]
        if any(f.primary_key and getattr(f, "db_returning", False) for f in fields):
            raise ValueError(f"{model.__name__}: insert() needs a primary key set before the insert")
        sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        cached = _SQL[key] = (sql, fields)
    return cached


def insert(obj: Model, using: str | None = None) -> Model:
    """INSERT ``obj`` (a new instance) and mark it saved; returns it."""
    model = type(obj)
    alias = using or router.db_for_write(model, instance=obj)
    connection = connections[alias]
    sql, fields = _prepared(model, alias)
    if pre_save.has_listeners(model):
        pre_save.send(sender=model, instance=obj, raw=False, using=alias, update_fields=None)
    params: list[Any] = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    obj._state.adding = False
    obj._state.db = alias
    if post_save.has_listeners(model):
        post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=alias)
    return obj
