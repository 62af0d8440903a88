// A Node.js consumer of ekko's change events (the EKKO_EVENTS stream), with nothing but the
// official `nats` package: it makes a wallet with two children, updates the wallet and
// deletes it with its children (each request with an Ekko-Correlation-Id header), then reads
// the stream back and checks the envelope: `before` and `data` (the record after), the
// transaction id shared by the cascade's events with positions 0..n-1, the correlation id,
// and that every Ekko-* header says what the body says.
//
//   npm install && node events.mjs nats://127.0.0.1:4222 plan.json nats://reader:<password>@127.0.0.1:4222
//
// The requests go over the first URL (as user `client`); the events are read as user `reader`,
// which may only create consumers on EKKO_EVENTS and receive on its own inbox prefix.
// plan.json: the one crud.mjs reads (payloads of wallets, alerts and wallet_balances are used).
// Prints one JSON summary on stdout; exits 1 when any check failed.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { connect, headers } from "nats";
import { report } from "./report.mjs";

const [url = "nats://127.0.0.1:4222", planPath, readerUrl, prefix = "ekko"] = process.argv.slice(2);
const { summary, check, run } = report({ events: 0 });
const plan = Object.fromEntries(JSON.parse(readFileSync(planPath, "utf8")).entities.map((e) => [e.name, e]));
const encoder = new TextEncoder();
const decoder = new TextDecoder();


/** A request that must succeed, sent with an Ekko-Correlation-Id header. */
async function ok(nc, subject, body, correlationId) {
  const h = headers();
  h.set("Ekko-Correlation-Id", correlationId);
  const msg = await nc.request(`${prefix}.${subject}`, encoder.encode(JSON.stringify(body)), { timeout: 5000, headers: h });
  const reply = JSON.parse(decoder.decode(msg.data));
  if (msg.headers?.get("Nats-Service-Error-Code")) throw new Error(`${subject} -> ${JSON.stringify(reply)}`);
  return reply;
}

/** A connection; user and password in the URL are passed as options (nats.js ignores them there). */
function connectTo(address, options = {}) {
  const parsed = new URL(address);
  const auth = parsed.username ? { user: decodeURIComponent(parsed.username), pass: decodeURIComponent(parsed.password) } : {};
  return connect({ servers: `${parsed.hostname}:${parsed.port}`, timeout: 5000, maxReconnectAttempts: 0, ...auth, ...options });
}

/** The event of a stream message, after checking each header against its body. */
function decoded(stored) {
  const event = JSON.parse(decoder.decode(stored.data));
  const h = stored.headers;
  const expected = {
    "Nats-Msg-Id": event.event_id,
    "Ekko-Entity": event.entity,
    "Ekko-Action": event.action,
    "Ekko-Entity-Id": event.id,
    "Ekko-Version": String(event.version),
    "Ekko-Tx-Id": event.tx_id,
    "Ekko-Tx-Index": String(event.tx_index),
    "Ekko-Tx-Count": String(event.tx_count),
    "Ekko-Correlation-Id": event.correlation_id ?? "",
  };
  for (const [name, value] of Object.entries(expected)) {
    check(`header ${name} matches the body`, h?.get(name) === value, { seq: stored.seq, header: h?.get(name), body: value });
  }
  check("subject names entity and action", stored.subject === `${prefix}.events.${event.entity}.${event.action}`, stored.subject);
  return event;
}

/** The first `count` events of the stream, through an ordered consumer (the relay publishes
 * after commit: the fetch waits for them). */
async function readEvents(count) {
  const nc = await connectTo(readerUrl, { inboxPrefix: "_INBOX_reader" });
  try {
    const consumer = await nc.jetstream().consumers.get("EKKO_EVENTS", { filterSubjects: [`${prefix}.events.>`] });
    const events = [];
    const deadline = Date.now() + 20000;
    while (events.length < count && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: count - events.length, expires: 2000 });
      for await (const msg of batch) events.push(decoded(msg));
    }
    return events;
  } finally {
    await nc.close();
  }
}

async function main() {
  const nc = await connectTo(url);
  try {
    const wallet = await ok(nc, "wallets.create", plan.wallets.create, "js-create");
    const alert = await ok(nc, "alerts.create", { ...plan.alerts.create, related_wallet_id: wallet.id }, "js-create");
    const balance = await ok(nc, "wallet_balances.create", { ...plan.wallet_balances.create, wallet_id: wallet.id }, "js-create");
    // The wallet's balance follows its newest balance row: the create above updated it once.
    const followed = await ok(nc, "wallets.get", { id: wallet.id }, "js-get");
    const updated = await ok(nc, "wallets.update", { id: wallet.id, ...plan.wallets.update }, "js-update");
    await ok(nc, "wallets.delete", { id: wallet.id, cascade: true }, "js-cascade");

    const events = await readEvents(8);
    summary.events = events.length;
    check("3 creates, 2 updates (one the balance row's) and 3 deletes make 8 events", events.length === 8, events.length);

    const follow = events.find((e) => e.action === "updated" && e.correlation_id === null);
    check("the balance row's wallet update is a transaction of its own", follow?.tx_count === 1 && follow?.data?.version === 2, follow);
    const update = events.find((e) => e.action === "updated" && e.correlation_id !== null);
    check("the update carries the record before", isDeepStrictEqual(update?.before, followed), update);
    check("the update carries the record after (data)", isDeepStrictEqual(update?.data, updated), update);
    check("the update's versions go 2 -> 3", update?.before?.version === 2 && update?.version === 3, update);
    check("the update's correlation id", update?.correlation_id === "js-update", update);

    const deletes = events.filter((e) => e.action === "deleted");
    const records = { [wallet.id]: updated, [alert.id]: alert, [balance.id]: balance };
    check("the cascade's events share one tx_id", new Set(deletes.map((e) => e.tx_id)).size === 1, deletes);
    check("the cascade's events are numbered 0..n-1", isDeepStrictEqual(deletes.map((e) => e.tx_index), [0, 1, 2]), deletes);
    check("the cascade's events count n", deletes.every((e) => e.tx_count === 3), deletes);
    check("the wallet is deleted after its children", deletes[2]?.id === wallet.id, deletes);
    for (const e of deletes) {
      check(`deleted ${e.entity} carries its record before`, isDeepStrictEqual(e.before, records[e.id]), e);
      check(`deleted ${e.entity} has no record after`, e.data === null, e);
      check(`deleted ${e.entity} carries the correlation id`, e.correlation_id === "js-cascade", e);
    }
    const creates = events.filter((e) => e.action === "created");
    check("each create is its own transaction", creates.every((e) => e.tx_count === 1 && e.tx_index === 0 && e.before === null), creates);
    check("creates are not in the cascade's transaction", new Set([...creates, deletes[0]].map((e) => e.tx_id)).size === 4, creates);
    summary.cascade = deletes.map((e) => [e.entity, e.tx_index, e.tx_count]);
  } finally {
    await nc.close();
  }
}

await run(main);
