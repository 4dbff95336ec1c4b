// The graphile-worker side of `cargo bench --bench queue` (see
// benches/queue-vs-graphile). One measurement per process, so every round
// starts cold, as the Rust side's worker does:
//
//   node run.cjs '{"mode":"throughput","jobs":20000,"concurrency":8,"batched":false}'
//   node run.cjs '{"mode":"latency","samples":300,"concurrency":4}'
//
// Needs DATABASE_URL and GRAPHILE_DIR (the folder graphile-worker was
// installed into). Prints one JSON line with the result.
//
// Measured like the Rust side: throughput from the first handler start until
// every job's completion is recorded (the jobs table is empty: graphile
// deletes completed jobs), and latency from before the enqueue call (an
// autocommitted `addJob`) to the handler's start.
"use strict";
const path = require("node:path");
const { createRequire } = require("node:module");
const { performance } = require("node:perf_hooks");

const from = createRequire(path.join(process.env.GRAPHILE_DIR, "package.json"));
const { run, runMigrations, makeWorkerUtils } = from("graphile-worker");

const connectionString = process.env.DATABASE_URL;
const opts = JSON.parse(process.argv[2]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const logger = new (from("graphile-worker").Logger)(() => (level, message) => {
  if (level === "error") console.error(message);
});

// The options of a measured worker: unbatched (graphile's defaults), or with
// graphile's batching (a local queue of locked jobs and batched completion).
function workerOptions(concurrency, batched) {
  const preset = {
    worker: {
      connectionString,
      concurrentJobs: concurrency,
      maxPoolSize: Math.max(10, concurrency + 2),
      pollInterval: 1000,
      logger,
    },
  };
  if (batched) {
    Object.assign(preset.worker, {
      localQueue: { size: opts.localQueueSize ?? 500 },
      completeJobBatchDelay: opts.batchDelay ?? 0,
      failJobBatchDelay: opts.batchDelay ?? 0,
    });
  }
  return { concurrency, noHandleSignals: true, preset, logger };
}

async function throughput(utils, { jobs, concurrency, batched }) {
  await utils.withPgClient((c) => c.query("TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues"));
  for (let i = 0; i < jobs; i += 2000) {
    const chunk = [];
    for (let j = i; j < Math.min(jobs, i + 2000); j++) chunk.push({ identifier: "noop", payload: { i: j } });
    await utils.addJobs(chunk);
  }
  let done = 0;
  let first;
  let allStarted;
  const started = new Promise((r) => (allStarted = r));
  const runner = await run({
    ...workerOptions(concurrency, batched),
    taskList: {
      noop: async () => {
        if (first === undefined) first = performance.now();
        if (++done === jobs) allStarted();
      },
    },
  });
  await started;
  // Count only recorded completions.
  for (;;) {
    const { rows } = await utils.withPgClient((c) => c.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs"));
    if (rows[0].n === 0) break;
    await sleep(2);
  }
  const secs = (performance.now() - first) / 1000;
  await runner.stop();
  return { jobs_per_sec: jobs / secs, secs };
}

async function latency(utils, { samples, concurrency }) {
  await utils.withPgClient((c) => c.query("TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues"));
  let waiting;
  const runner = await run({
    ...workerOptions(concurrency, false),
    taskList: {
      ping: async (payload) => {
        const at = performance.now();
        waiting(payload.seq, at);
      },
    },
  });
  await sleep(300);
  const lat = [];
  for (let seq = 0; seq < samples; seq++) {
    const startedP = new Promise((r) => (waiting = (s, at) => r([s, at])));
    const sent = performance.now();
    await utils.addJob("ping", { seq });
    const [s, at] = await startedP;
    if (s !== seq) throw new Error(`expected ${seq}, got ${s}`);
    lat.push(at - sent);
    await sleep(20);
  }
  await runner.stop();
  lat.sort((a, b) => a - b);
  const p = (q) => lat[Math.round((lat.length - 1) * q)];
  return { p50: p(0.5), p95: p(0.95), p99: p(0.99) };
}

(async () => {
  await runMigrations({ connectionString, logger });
  const utils = await makeWorkerUtils({ connectionString, logger });
  try {
    const out = opts.mode === "latency" ? await latency(utils, opts) : await throughput(utils, opts);
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    await utils.release();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
