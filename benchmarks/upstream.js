// The benchmark's upstream, non-Python: a fast simulator of a slow JSON API (Node's http module, one process).
//
// Same contract as benchmarks/upstream.py (its Python fallback, used when `node` is not installed): `GET /slow_data`
// and `/slow_data_1` ... `/slow_data_10` answer after a fixed latency with a JSON body in `api.serializers.SlowData`'s
// shape; `GET /__stats` returns {"requests": N, "items": K}; `GET /__items?n=5` switches every later payload to
// N items (5: ~0.4 KB, 40: ~2.3 KB), so the runner changes the payload size between runs without restarting the
// servers under test. Bodies are encoded once per size. Query strings on payload paths are ignored.
//
//     node benchmarks/upstream.js --port 8101 [--latency-ms 50] [--items 40]
"use strict";
const http = require("http");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const port = Number(arg("--port"));
const latencyMs = Number(arg("--latency-ms", "50"));
let items = Number(arg("--items", "40"));
const paths = ["slow_data", ...Array.from({ length: 10 }, (_, n) => `slow_data_${n + 1}`)];
const cache = new Map(); // items -> Map(path -> Buffer)

// The same bytes as upstream.py's payload() (json.dumps with compact separators).
function payload(source, count) {
  const list = [];
  for (let i = 0; i < count; i++) list.push({ id: i, value: `${source}-item-${String(i).padStart(4, "0")}-lorem-ipsum` });
  const latency = Number.isInteger(latencyMs) ? `${latencyMs}.0` : String(latencyMs);
  const head = JSON.stringify({ source, message: `Simulated payload from ${source}, served after a fixed delay.` });
  return Buffer.from(`${head.slice(0, -1)},"latency_ms":${latency},"items":${JSON.stringify(list)}}`);
}
function bodies(count) {
  if (!cache.has(count)) cache.set(count, new Map(paths.map((p) => [`/${p}`, payload(p, count)])));
  return cache.get(count);
}
let served = 0;

function respond(res, status, body) {
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": body.length,
    "cache-control": "no-store",
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const [path, query = ""] = req.url.split("?", 2);
  const body = req.method === "GET" ? bodies(items).get(path) : undefined;
  if (body !== undefined) {
    setTimeout(() => {
      served += 1;
      respond(res, 200, body);
    }, latencyMs);
  } else if (path === "/__stats") {
    respond(res, 200, Buffer.from(JSON.stringify({ requests: served, items })));
  } else if (path === "/__items") {
    const n = Number(new URLSearchParams(query).get("n"));
    if (!Number.isInteger(n) || n < 1) return respond(res, 400, Buffer.from('{"detail":"n: a whole number >= 1"}'));
    items = n;
    respond(res, 200, Buffer.from(JSON.stringify({ items, bytes: bodies(n).get("/slow_data_1").length })));
  } else {
    respond(res, 404, Buffer.from('{"detail":"not found"}'));
  }
});
server.keepAliveTimeout = 75_000;
server.headersTimeout = 80_000;
server.maxRequestsPerSocket = 0;
server.listen({ port, host: "127.0.0.1", backlog: 4096 });
process.on("SIGTERM", () => process.exit(0));
