"""The trigram mask search_terms stores: DuckDB computes it as plain Python does, and a text
that contains q has every bit of q's mask (so the mask never hides a match), whatever the script."""

from __future__ import annotations

import random

import duckdb

from service.store.search import grams_sql

ALPHABET = "abcXYZ 019%_\\éÉßẞİıΩωЖж中文🙂\u0301\u200d\U0010ffff"


def grams(text: str) -> int:
    mask = 0
    for i in range(len(text) - 2):
        mask |= 1 << ((ord(text[i]) * 1031 + ord(text[i + 1]) * 37 + ord(text[i + 2])) % 63)
    return mask


def test_the_mask_in_duckdb_is_the_mask_in_python_and_covers_every_substring() -> None:
    rng = random.Random(5)
    con = duckdb.connect()
    texts = ["", "a", "ab", "abc", *("".join(rng.choices(ALPHABET, k=rng.randint(0, 40))) for _ in range(300))]
    for text in texts:
        lowered, mask = con.execute(f"SELECT t, {grams_sql('t')} FROM (SELECT lower(?) AS t)", [text]).fetchone()
        assert mask == grams(lowered), text
        for _ in range(5):
            i = rng.randint(0, len(text))
            sub = text[i : rng.randint(i, len(text))]
            sub_lowered, sub_mask = con.execute(
                f"SELECT t, {grams_sql('t')} FROM (SELECT lower(?) AS t)", [sub]
            ).fetchone()
            if sub_lowered in lowered:
                assert sub_mask & mask == sub_mask, (text, sub)


def test_long_texts_have_the_mask_python_computes() -> None:
    """Alert messages run to thousands of characters: the mask of every trigram, to the last."""
    rng = random.Random(6)
    con = duckdb.connect()
    for length in (2_000, 10_000):
        text = "".join(rng.choices(ALPHABET, k=length))
        lowered, mask = con.execute(f"SELECT t, {grams_sql('t')} FROM (SELECT lower(?) AS t)", [text]).fetchone()
        assert mask == grams(lowered)
    # The last trigram alone sets a bit the rest of the text does not.
    text = "a" * 5_000 + "xyz"
    mask = con.execute(f"SELECT {grams_sql('t')} FROM (SELECT ? AS t)", [text]).fetchone()[0]
    assert mask == grams(text) != grams("a" * 5_000)
