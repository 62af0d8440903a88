"""`ekko.search` over `search_terms`, the table derived from the rows it covers.

One row per non-null searchable field (service.model.search.SEARCHABLE) of each row: the
field lower-cased by DuckDB, a 64-bit mask of its character trigrams, and the hit's title.
A search reads that one narrow table instead of every searchable column of six tables:
rows whose mask lacks a trigram of q cannot contain q and are skipped by an integer test,
and `contains` runs only on the rest (docs/decisions.md, "Search reads a derived table").

The writer keeps the table equal to the rows inside the transaction that changes them
(`SearchRefresh`, noted by UnitOfWork.record for every change of a searchable entity);
a migration or a restore, which bring rows in bulk, `rebuild` it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from schema.common import Record
from schema.reports import SearchHit
from service.model.search import EXACT, PREFIX, SEARCHABLE, SUBSTRING, Searchable
from service.store.sql import Cursor, quote
from service.store.write_batch import TableAccess, WriteBatch

TABLE = "search_terms"
# A hit's title is cut to this many characters: 100 hits of 10,000-character alert messages
# would not fit in a NATS message.
TITLE_LENGTH = 200
_BY_ENTITY = {item.entity: item for item in SEARCHABLE}
_RANK = {item.entity: rank for rank, item in enumerate(SEARCHABLE)}
# entity -> the fields its search rows are made of; a change of any other field leaves them.
_SEARCHED = {item.entity: frozenset((*item.fields, *item.title)) for item in SEARCHABLE}


def searched_fields(entity: str) -> frozenset[str]:
    """The fields of `entity` its search rows depend on (empty: not searched)."""
    return _SEARCHED.get(entity, frozenset())


def grams_sql(text: str) -> str:
    """The trigram mask of the SQL expression `text`: bit (hash of the three code points) % 63
    set for each trigram. A string that contains another has every trigram of it, so
    `grams(text) & grams(q) = grams(q)` holds whenever contains(text, q) does. Plain integer
    arithmetic of code points, not DuckDB's hash(): stored masks must stay valid across
    DuckDB versions (migration 9 spells the same mask out).

    The code points are listed once and zipped with themselves shifted by one and two: linear
    in the text's length. Migration 9's `substr(text, i, 1)` per position walks the UTF-8
    string from its start each time, so a 10,000-character alert message cost ~200 ms of the
    writer's time against ~14 ms this way (docs/decisions.md, "Search reads a derived table")."""
    points = f"list_transform(string_split({text}, ''), lambda c: unicode(c))"
    return (
        f"coalesce(list_aggregate(list_transform(list_zip(({points})[1:-3], ({points})[2:-2], ({points})[3:]),"
        " lambda p: 1::UBIGINT << ((p[1] * 1031 + p[2] * 37 + p[3]) % 63)::INTEGER), 'bit_or'), 0::UBIGINT)"
    )


def title_of(item: Searchable, record: Record) -> str:
    """The first title field that is not null (SEARCHABLE guarantees one never is)."""
    return next(value for name in item.title if (value := getattr(record, name)) is not None)


def _source_sql(item: Searchable, field: str) -> str:
    """(entity, id, lower-cased field, title) of each row of `item` whose `field` is not null."""
    title = f"coalesce({', '.join(map(quote, item.title))})" if len(item.title) > 1 else quote(item.title[0])
    return (
        f"SELECT '{item.entity}' AS entity, id, lower({quote(field)}) AS t, {title} AS title"
        f" FROM {quote(item.entity)} WHERE {quote(field)} IS NOT NULL"
    )


# The rows' values (entity, id, t: the lower-cased text, title), as the stored row.
_ROW_SQL = f"SELECT entity, id, t, {grams_sql('t')}, left(title, {TITLE_LENGTH})"


def rebuild(cur: Cursor) -> None:
    """Every row of search_terms again from the entity tables (after rows came in bulk)."""
    cur.execute(f"DELETE FROM {TABLE}")
    sources = " UNION ALL ".join(_source_sql(item, field) for item in SEARCHABLE for field in item.fields)
    cur.execute(f"INSERT INTO {TABLE} {_ROW_SQL} FROM ({sources})")


class SearchRefresh:
    """The search rows a group's writes changed, replaced once at the end of its transaction
    (a deferred task of the writer's batch): one DELETE and one INSERT for the whole group.
    Built from the records the writes recorded, so no entity table is read back."""

    def __init__(self) -> None:
        # (entity, id) -> the row's fields and title as now, or None once deleted; the last write wins.
        self.rows: dict[tuple[str, str], tuple[list[str], str] | None] = {}
        self.replaced: set[tuple[str, str]] = set()  # keys that may have rows already

    def note(self, entity: str, record: Record, *, created: bool, deleted: bool) -> None:
        item = _BY_ENTITY[entity]
        key = (entity, record.id)
        if not created:
            self.replaced.add(key)
        fields = [value for name in item.fields if (value := getattr(record, name)) is not None]
        self.rows[key] = None if deleted else (fields, title_of(item, record))

    def merge(self, other: SearchRefresh) -> None:
        """Take another write's rows, which come later in the transaction."""
        self.replaced |= other.replaced
        self.rows.update(other.rows)

    def run(self, uow: Any) -> None:
        uow.store(SearchTerms).replace(self.rows, self.replaced)


class SearchTerms(TableAccess):
    """Statements on search_terms inside the writer's transaction (UnitOfWork.store), after
    any rows the batch holds back for it, as every table's (none today: its rows are written
    here, at once)."""

    def __init__(self, cur: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cur, TABLE, batch)

    def replace(
        self, rows: dict[tuple[str, str], tuple[list[str], str] | None], replaced: set[tuple[str, str]]
    ) -> None:
        if replaced:
            entities, ids = zip(*sorted(replaced), strict=True)
            self._execute(
                f"DELETE FROM {TABLE} WHERE (entity, id) IN (SELECT (unnest(?::VARCHAR[]), unnest(?::VARCHAR[])))",
                [list(entities), list(ids)],
            )
        new = [(entity, entity_id, text, row[1]) for (entity, entity_id), row in rows.items() if row for text in row[0]]
        if new:
            columns = [list(column) for column in zip(*new, strict=True)]
            self._execute(
                f"INSERT INTO {TABLE} {_ROW_SQL}"
                " FROM (SELECT unnest(?::VARCHAR[]) AS entity, unnest(?::VARCHAR[]) AS id,"
                " lower(unnest(?::VARCHAR[])) AS t, unnest(?::VARCHAR[]) AS title)",
                columns,
            )


def _rank_sql(types: Iterable[str]) -> str:
    return "CASE entity " + " ".join(f"WHEN '{t}' THEN {_RANK[t]}" for t in types) + " END"


_FIELDS_PER_ROW = max(len(item.fields) for item in SEARCHABLE)


def search(cur: Cursor, q: str, types: Sequence[str], limit: int) -> list[SearchHit]:
    """The best `limit` hits over `types`: score, then type (SEARCHABLE order), then title
    (case-insensitively), then id. q is lower-cased by DuckDB, as the stored text was (Python's
    str.lower differs on a few characters); `contains` takes %, _ and \\ literally.

    The trigram test runs alone in a subquery of its own (`OFFSET 0` keeps the optimizer from
    merging it): DuckDB otherwise evaluated `contains` on every row (11 ms against 3 ms), and
    a test of `entity` on every row cost more than the trigram test.

    A row's fields are rows of their own, so one row may match more than once. Rather than
    group every match (thousands for a short q), the Top-N keeps limit x fields-per-row
    matching fields in hit order, and the first of each row is its best: a row's other
    fields sort after it (same type, title and id, lower score), and those rows can push
    at most that many later hits out of the Top-N."""
    needle, grams = cur.execute(f"SELECT t, {grams_sql('t')} FROM (SELECT lower(?) AS t)", [q]).fetchone() or ("", 0)
    # Only when some types are left out: a test of entity costs as much as the trigram test.
    chosen = "" if set(types) == set(_RANK) else f"entity IN ({', '.join(repr(t) for t in types)}) AND "
    rows = cur.execute(
        f"SELECT entity, id, title, CASE WHEN text = $n THEN {EXACT} WHEN starts_with(text, $n) THEN {PREFIX}"
        f" ELSE {SUBSTRING} END AS score"
        f" FROM (SELECT entity, id, text, title FROM {TABLE} WHERE grams & $g::UBIGINT = $g::UBIGINT OFFSET 0)"
        f" WHERE {chosen}contains(text, $n)"
        f" ORDER BY score DESC, {_rank_sql(types)}, lower(title), id LIMIT $limit",
        {"n": needle, "g": grams, "limit": limit * _FIELDS_PER_ROW},
    ).fetchall()
    hits: dict[tuple[str, str], SearchHit] = {}
    for entity, entity_id, title, score in rows:
        hits.setdefault((entity, entity_id), SearchHit(type=entity, id=entity_id, title=title, score=int(score)))
    return list(hits.values())[:limit]
