// ekko seen through the official NATS services client (@nats-io/services), as `nats micro`
// sees it: ls (ping), info and stats, by name and by name + id.
//
//   npm install && node services.mjs nats://127.0.0.1:4222 [service name, default ekko]
//
// Prints one JSON object on stdout: what each call returned (the test asserts on it);
// exits 1 when a call failed.
import { connect } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";

const [url = "nats://127.0.0.1:4222", name = "ekko"] = process.argv.slice(2);

async function collect(iterator) {
  const replies = [];
  for await (const reply of await iterator) replies.push(reply);
  return replies;
}

const nc = await connect({ servers: url });
const out = { ok: false };
try {
  const client = new Svcm(nc).client({ strategy: "stall", maxWait: 3000 });
  out.ping_all = await collect(client.ping());
  out.ping = await collect(client.ping(name));
  const id = out.ping[0]?.id;
  out.info = await collect(client.info(name));
  out.info_by_id = id ? await collect(client.info(name, id)) : [];
  out.stats = await collect(client.stats(name));
  out.stats_by_id = id ? await collect(client.stats(name, id)) : [];
  out.ok = true;
} catch (err) {
  out.error = String(err?.stack ?? err);
} finally {
  await nc.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.ok ? 0 : 1);
