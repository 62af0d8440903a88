"""JetStream: KV + events adapter, outbox relay, verify/repair, bucket reader."""
