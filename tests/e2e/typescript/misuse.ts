/**
 * Mistakes the generated types must catch: tests/e2e/test_typescript_client.py type-checks this file and expects
 * tsc to fail with exactly the error marked on each line (`// expect TSnnnn`) and no other. It proves the check of
 * client.ts is not vacuous: were `paths` loose (`any`, `string` for the code, a missing null), these would compile.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./build/schema.js";

const api = createClient<paths>({ baseUrl: "http://127.0.0.1" });

export async function misuse(): Promise<void> {
  await api.GET("/api/product/{id}/", { params: { path: { id: 7 } } }); // expect TS2345
  await api.GET("/api/products/{id}/", { params: { path: { id: "7" } } }); // expect TS2322
  await api.GET("/api/products/", { params: { query: { size: 5 } } }); // expect TS2353

  const overview = await api.GET("/api/products/{id}/", { params: { path: { id: 7 } } });
  console.log(overview.data.sku); // expect TS18048
  if (overview.data === undefined) {
    return;
  }
  console.log(overview.data.discount); // expect TS2339
  const id: string = overview.data.id; // expect TS2322
  console.log(id, overview.data.inventory.in_stock); // expect TS18047

  const missing = await api.GET("/api/products/{id}/", { params: { path: { id: 99999 } } });
  if (missing.error !== undefined) {
    const problem: components["schemas"]["Problem"] = missing.error;
    if (problem.code === "no_such_code") { // expect TS2367
      console.log(problem.request_id.length); // expect TS18047
    }
  }
}
