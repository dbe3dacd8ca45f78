/**
 * A front-end's client of Tributary: openapi-fetch over the `paths` that openapi-typescript generates from
 * openapi/schema.yaml, with no hand-written types. tests/e2e/test_typescript_client.py type-checks it with
 * `tsc --strict --noEmit`, then runs it against the live service (`node build/js/client.js <base URL>`); it prints
 * one JSON document with what it saw, which the test asserts on. A failed call sets a non-zero exit status.
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./build/schema.js";

type Problem = components["schemas"]["Problem"];
type ProblemCode = components["schemas"]["ProblemCode"];
type Product = components["schemas"]["Product"];
type PageQuery = { page: number; page_size: number };

const OVERVIEW = "/api/products/{id}/";
const PRODUCTS = "/api/products/";
const UNKNOWN_PRODUCT = 99999;

/** What a page of UI would tell the user for each family of problem: the point is switching on the typed code. */
function userMessage(code: ProblemCode): string {
  switch (code) {
    case "not_found":
      return "This product does not exist.";
    case "invalid_request":
    case "bad_request":
      return "Please check the form.";
    case "circuit_open":
    case "upstream_unavailable":
    case "upstream_unreachable":
    case "upstream_saturated":
      return "A service we depend on is down; try again shortly.";
    case "upstream_timeout":
    case "deadline_exceeded":
      return "That took too long; try again.";
    default:
      return "Something went wrong.";
  }
}

/** `next` is an absolute URL; openapi-fetch takes a path and typed parameters, so read them back from it. */
function pageParams(next: string): PageQuery {
  const query = new URL(next).searchParams;
  return { page: Number(query.get("page") ?? "1"), page_size: Number(query.get("page_size") ?? "20") };
}

/** One page of products (a function of its own, so the paging loop's types are not inferred from themselves). */
async function productPage(api: Client<paths>, query: PageQuery) {
  return api.GET(PRODUCTS, { params: { query } });
}

async function main(baseUrl: string): Promise<void> {
  const api = createClient<paths>({ baseUrl });

  const overview = await api.GET(OVERVIEW, { params: { path: { id: 7 }, query: { currency: "GBP" } } });
  if (overview.error !== undefined) {
    throw new Error(`overview: ${overview.response.status} ${overview.error.code}`);
  }
  const product = overview.data; // ProductOverview: narrowed by the error check above
  const productResult = {
    status: overview.response.status,
    id: product.id,
    sku: product.sku,
    price: product.price,
    converted_currency: product.converted_price?.currency ?? null,
    in_stock: product.inventory?.in_stock ?? null,
    review_count: product.reviews?.count ?? null,
    missing: product.missing.map((part) => part.source),
  };

  const pages: { status: number; ids: number[]; next: string | null }[] = [];
  let query: PageQuery | null = { page: 1, page_size: 50 };
  while (query !== null) {
    const page = await productPage(api, query);
    if (page.error !== undefined) {
      throw new Error(`products page ${query.page}: ${page.response.status} ${page.error.code}`);
    }
    const results: Product[] = page.data.results;
    pages.push({ status: page.response.status, ids: results.map((item) => item.id), next: page.data.next });
    query = page.data.next === null ? null : pageParams(page.data.next);
  }

  const missing = await api.GET(OVERVIEW, { params: { path: { id: UNKNOWN_PRODUCT } } });
  if (missing.data !== undefined) {
    throw new Error(`product ${UNKNOWN_PRODUCT} exists: ${missing.data.sku}`);
  }
  const problem: Problem = missing.error; // the 404 body, typed as the schema's Problem
  const problemResult = {
    status: missing.response.status,
    content_type: missing.response.headers.get("content-type"),
    request_id_header: missing.response.headers.get("x-request-id"),
    code: problem.code,
    type: problem.type,
    problem_status: problem.status,
    request_id: problem.request_id,
    message: userMessage(problem.code),
  };

  console.log(JSON.stringify({ overview: productResult, pages, problem: problemResult }));
}

const baseUrl = process.argv[2];
if (baseUrl === undefined) {
  console.error("usage: node build/js/client.js <base URL>");
  process.exitCode = 2;
} else {
  await main(baseUrl).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
