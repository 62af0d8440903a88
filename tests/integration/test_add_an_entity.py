"""docs/add-an-entity.md is what adding an entity takes. In a copy of the repository
this test adds a throwaway `notes` entity using the walkthrough's own code blocks and
steps. Then, in fresh processes, it runs the registry, entity-fixture and DDL checks
the walkthrough names, and a real ekko serves `ekko.notes.*` on a fresh DuckDB file,
relaying notes to KV."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from service.store.ddl import LATEST_VERSION
from tests.natsd import NatsServer

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "add-an-entity.md"
UNIT_CHECKS = ("test_tables.py", "test_registry.py", "test_released_migrations.py", "test_entity_fixtures.py")

SERVE_NOTES = """
import asyncio, json, sys
from pathlib import Path
import nats
import service
from service.app import Ekko
from service.config import Settings

async def main(url: str, db: str) -> None:
    assert Path(service.__file__).is_relative_to(Path.cwd()), service.__file__  # the copy, not the repo
    app = Ekko(Settings(duckdb_path=Path(db), bcrypt_rounds=4, workers_per_subject=1, write_workers_per_subject=1), url)
    await app.start()
    nc = await nats.connect(url)
    try:
        async def ask(subject, body):
            reply = await nc.request(f"ekko.{subject}", json.dumps(body).encode(), timeout=10)
            return (reply.headers or {}).get("Nats-Service-Error-Code", "200"), json.loads(reply.data)
        _, wallet = await ask("wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "ab" * 20})
        status, note = await ask("notes.create", {"title": "hello", "wallet_id": wallet["id"]})
        assert status == "200", note
        _, got = await ask("notes.get", {"id": note["id"]})
        _, page = await ask("notes.list", {"filters": {"wallet_id": wallet["id"]}, "sort": ["-title"]})
        orphan, _ = await ask("notes.create", {"title": "x", "wallet_id": "00000000-0000-4000-8000-000000000000"})
        refused, _ = await ask("wallets.delete", {"id": wallet["id"]})
        kv = await nc.jetstream().key_value("notes")
        for _ in range(400):
            if await app.relay.pending() == 0:
                break
            await asyncio.sleep(0.05)
        in_kv = json.loads((await kv.get(note["id"])).value)
        version = app.db.schema_version
    finally:
        await nc.close()
        await app.stop()
    print(json.dumps({"note": note, "got": got, "page": page["items"], "in_kv": in_kv, "orphan": orphan,
                      "refused": refused, "version": version}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def doc_block(name: str) -> str:
    """The code block under `<!-- add-an-entity: name -->` in the walkthrough."""
    found = re.findall(rf"<!-- add-an-entity: {re.escape(name)} -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert len(found) == 1, f"docs/add-an-entity.md has no single block marked {name!r}"
    return found[0]


def copy_repository(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "node_modules")
    for package in ("schema", "service", "handlers"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    (dest / "tests" / "unit").mkdir(parents=True)
    for support in (ROOT / "tests").glob("*.py"):
        shutil.copy(support, dest / "tests" / support.name)
    shutil.copytree(ROOT / "tests" / "fixtures", dest / "tests" / "fixtures")
    for name in ("__init__.py", *UNIT_CHECKS):
        shutil.copy(ROOT / "tests" / "unit" / name, dest / "tests" / "unit" / name)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def between(text: str, start: str, end: str) -> tuple[int, int]:
    """Where `start` begins and the first `end` after it; a clear failure when the file changed shape."""
    first = text.find(start)
    last = text.find(end, first)
    assert first >= 0 and last >= 0, f"{start!r} ... {end!r} not found: update this test with the file's new layout"
    return first, last


def run(dest: Path, *args: str, timeout: float = 60) -> str:
    env = {**os.environ, "PYTHONPATH": str(dest)}
    done = subprocess.run(
        [sys.executable, *args], cwd=dest, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def add_notes_as_the_walkthrough_says(dest: Path) -> None:
    # 1. the schema module
    (dest / "schema" / "notes.py").write_text(doc_block("schema/notes.py"))
    # 2. the registry entry, last in the list (its parent, wallets, comes before it)
    registry = dest / "service" / "model" / "registry.py"
    text = registry.read_text()
    text = text.replace("\nfrom schema import ", "\nfrom schema import notes\nfrom schema import ", 1)
    _, end = between(text, "ENTITIES: dict[str, EntitySpec] = registry_of(", "\n    )\n)\n")
    text = text[:end] + "\n" + textwrap.indent(doc_block("registry entry").rstrip(), " " * 8) + "," + text[end:]
    registry.write_text(text)
    # 3. one new migration: the printed SQL, pasted
    sql = run(dest, "-m", "service.store.tables", "notes")
    assert sql.startswith('CREATE TABLE "notes"'), sql
    ddl = dest / "service" / "store" / "ddl.py"
    text = ddl.read_text()
    start, end = between(text, "MIGRATIONS: list[tuple[int, str, str]] = [", "\n]\n")
    migration = f'\n    ({LATEST_VERSION + 1}, "notes table", V_NOTES),'
    text = f'{text[:start]}V_NOTES = """\n{sql}"""\n\n{text[start:end]}{migration}{text[end:]}'
    ddl.write_text(text)
    # ... and, being merged, frozen: its sha256 in RELEASED
    frozen = dest / "tests" / "unit" / "test_released_migrations.py"
    digest = hashlib.sha256(f"\n{sql}".encode()).hexdigest()  # V_NOTES holds a newline, then the SQL
    start, end = between(frozen.read_text(), "RELEASED = {", "\n}\n")
    text = frozen.read_text()
    frozen.write_text(f'{text[:end]}\n    {LATEST_VERSION + 1}: "{digest}",{text[end:]}')
    # 4. one fixture entry
    fixtures = dest / "tests" / "fixtures" / "entities.json"
    entries = json.loads(fixtures.read_text()) | json.loads("{" + doc_block("fixture") + "}")
    fixtures.write_text(json.dumps(entries, indent=2))


def test_the_walkthrough_adds_an_entity_the_checks_accept_and_the_service_serves(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    dest = tmp_path / "repo"
    copy_repository(dest)
    add_notes_as_the_walkthrough_says(dest)

    checks = run(dest, "-m", "pytest", "-v", "-p", "no:cacheprovider", *(f"tests/unit/{n}" for n in UNIT_CHECKS))
    assert "test_the_derived_ddl_makes_the_table_the_migrations_made[notes] PASSED" in checks, checks
    assert "test_each_payload_is_a_valid_create_request_once_its_parents_are_filled_in[0-notes] PASSED" in checks

    out = run(dest, "-c", SERVE_NOTES, nats_server.url, str(tmp_path / "data" / "ekko.db"))
    result = json.loads(out.strip().splitlines()[-1])
    note = result["note"]
    assert note["title"] == "hello" and note["version"] == 1 and note["pinned"] is False
    assert result["got"] == note and result["page"] == [note]
    assert result["in_kv"]["id"] == note["id"], "the outbox relayed the note to its KV bucket"
    assert result["orphan"] == "404", "a note pointing at a missing wallet is refused"
    assert result["refused"] == "409", "a wallet with notes is not deleted without cascade"
    assert result["version"] == LATEST_VERSION + 1
