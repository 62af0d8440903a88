// A Node.js client of ekko, with nothing but the official `nats` package and plain JSON:
// create, get, update, list and delete every entity, log in, ask for health, and check
// that bad input gets a proper error reply (headers and body).
//
//   npm install && node crud.mjs nats://127.0.0.1:4222 plan.json [subject prefix, default ekko]
//
// plan.json says what to create, parents first (tests/e2e/test_js_client.py writes it from
// the entity registry and tests/fixtures/entities.json):
//   {"entities": [{"name": "wallets", "create": {...}, "parents": {"field": "parent entity"},
//                  "update": {...}}, ...],
//    "login": {"email": "...", "password": "..."}}
//
// Prints one JSON summary on stdout; exits 1 when any check failed.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { connect } from "nats";
import { report } from "./report.mjs";

const [url = "nats://127.0.0.1:4222", planPath, prefix = "ekko"] = process.argv.slice(2);
const { summary, check, run } = report({ url, entities: {}, errors_checked: [], extras: [] });

// Parents first: children point at the ids created before them. Deleted in reverse.
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const ENTITIES = plan.entities.map(({ name, create, parents, update }) => ({
  name,
  create: (ids) => ({ ...create, ...Object.fromEntries(Object.entries(parents).map(([field, parent]) => [field, ids[parent]])) }),
  update,
}));

const encoder = new TextEncoder();
const decoder = new TextDecoder();


/** One request; `body` is sent as JSON unless it is already a string. */
async function call(nc, subject, body) {
  const payload = typeof body === "string" ? body : JSON.stringify(body ?? {});
  const msg = await nc.request(`${prefix}.${subject}`, encoder.encode(payload), { timeout: 5000 });
  const code = msg.headers?.get("Nats-Service-Error-Code") ?? "";
  return {
    status: code ? Number(code) : 200,
    description: msg.headers?.get("Nats-Service-Error") ?? "",
    body: msg.data.length ? JSON.parse(decoder.decode(msg.data)) : null,
  };
}

/** The reply body of a request that must succeed; throws (ending this entity's run) when it did not. */
async function ok(nc, subject, body) {
  const reply = await call(nc, subject, body);
  if (!check(`${subject} succeeds`, reply.status === 200, reply.body)) {
    throw new Error(`${subject} -> ${reply.status} ${reply.description}`);
  }
  return reply.body;
}

/** An error reply: both service-error headers, and the JSON error body with the same code. */
function checkError(what, reply, status, code) {
  check(`${what}: Nats-Service-Error-Code is ${status}`, reply.status === status, { status: reply.status, body: reply.body });
  check(`${what}: Nats-Service-Error is set`, reply.description.length > 0);
  const error = reply.body?.error ?? {};
  check(`${what}: error.code is ${code}`, error.code === code, reply.body);
  check(`${what}: error.message is text`, typeof error.message === "string" && error.message.length > 0, reply.body);
  check(`${what}: error.details is a list`, Array.isArray(error.details), reply.body);
  summary.errors_checked.push(what);
  return error;
}

async function createReadUpdateList(nc, entity, ids, records) {
  const { name } = entity;
  const steps = (summary.entities[name] = []);
  const created = await ok(nc, `${name}.create`, entity.create(ids));
  check(`${name}.create gives an id and version 1`, typeof created.id === "string" && created.version === 1, created);
  if (name === "users") check("a user reply carries no password", !("password" in created) && !("password_hash" in created), created);
  ids[name] = created.id;
  steps.push("create");

  check(`${name}.get returns what create returned`, isDeepStrictEqual(await ok(nc, `${name}.get`, { id: created.id }), created));
  steps.push("get");

  const updated = await ok(nc, `${name}.update`, { id: created.id, expected_version: 1, ...entity.update });
  check(`${name}.update bumps the version`, updated.version === 2, updated);
  for (const [field, value] of Object.entries(entity.update)) {
    check(`${name}.update sets ${field}`, isDeepStrictEqual(updated[field], value), updated);
  }
  check(`${name}.get sees the update`, isDeepStrictEqual(await ok(nc, `${name}.get`, { id: created.id }), updated));
  steps.push("update");

  const page = await ok(nc, `${name}.list`, { filters: { id: created.id }, limit: 10 });
  check(`${name}.list finds exactly the updated record`, isDeepStrictEqual(page.items, [updated]) && page.next_cursor === null, page);
  steps.push("list");
  records[name] = updated;
}

async function badInput(nc, entity, ids, records) {
  const { name } = entity;
  checkError(`${name}.create with invalid JSON`, await call(nc, `${name}.create`, "{not json"), 400, "validation_error");
  const unknown = checkError(
    `${name}.create with an unknown field`,
    await call(nc, `${name}.create`, { ...entity.create(ids), bogus_field: 1 }),
    400,
    "validation_error",
  );
  check(`${name}.create names the unknown field`, String(unknown.message).includes("bogus_field"), unknown);
  if (records[name]) {
    const id = records[name].id;
    checkError(`${name}.update with an unknown field`, await call(nc, `${name}.update`, { id, bogus_field: 1 }), 400, "validation_error");
    checkError(`${name}.update with a stale expected_version`, await call(nc, `${name}.update`, { id, expected_version: 1, ...entity.update }), 409, "conflict");
  }
}

async function accountAndHealth(nc, ids) {
  const user = await ok(nc, "users.authenticate", plan.login);
  check("users.authenticate returns the user", user.id === ids.users, user);
  checkError("users.authenticate with a wrong password", await call(nc, "users.authenticate", { email: user.email, password: "wrong password" }), 401, "unauthorized");
  const health = await ok(nc, "health", null);
  check("health is healthy or degraded", ["healthy", "degraded"].includes(health.status), health);
  summary.extras.push("users.authenticate", "health");
}

async function deleteAll(nc, records) {
  for (const { name } of [...ENTITIES].reverse()) {
    if (!records[name]) continue;
    // Read again: a child's write may change its parent (a balance row sets its wallet's balance).
    const record = await ok(nc, `${name}.get`, { id: records[name].id });
    const reply = await ok(nc, `${name}.delete`, { id: record.id, expected_version: record.version });
    check(`${name}.delete confirms`, isDeepStrictEqual(reply, { id: record.id, deleted: true }), reply);
    checkError(`${name}.get after delete`, await call(nc, `${name}.get`, { id: record.id }), 404, "not_found");
    summary.entities[name].push("delete");
  }
}

async function main() {
  const nc = await connect({ servers: url, timeout: 5000, maxReconnectAttempts: 0 });
  const ids = {};
  const records = {};
  try {
    for (const entity of ENTITIES) {
      try {
        await createReadUpdateList(nc, entity, ids, records);
      } catch (error) {
        check(`${entity.name}: no exception`, false, String(error));
      }
    }
    for (const entity of ENTITIES) await badInput(nc, entity, ids, records);
    await accountAndHealth(nc, ids);
    await deleteAll(nc, records);
  } finally {
    await nc.close();
  }
}

await run(main);
