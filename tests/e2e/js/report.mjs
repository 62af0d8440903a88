// The summary every script here prints: checks counted, failures listed, one JSON object on
// stdout at the end and exit status 1 when any check failed (tests/e2e/test_js_client.py reads it).

/** A summary with these extra fields, its `check`, and `run(main)` that prints it when main ends. */
export function report(fields) {
  const started = Date.now();
  const summary = { ok: false, checks: 0, failures: [], ...fields };

  function check(what, condition, detail) {
    summary.checks += 1;
    if (!condition) summary.failures.push(detail === undefined ? what : `${what}: ${JSON.stringify(detail)}`);
    return condition;
  }

  async function run(main) {
    try {
      await main();
    } catch (error) {
      check("no exception", false, String(error));
    }
    summary.ok = summary.failures.length === 0;
    summary.elapsed_ms = Date.now() - started;
    console.log(JSON.stringify(summary, null, 2));
    process.exitCode = summary.ok ? 0 : 1;
  }

  return { summary, check, run };
}
