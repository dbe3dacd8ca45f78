// The only Node globals client.ts uses (its base URL argument and exit status), declared here so the client, browser
// code otherwise, needs no @types/node.
declare const process: { readonly argv: readonly string[]; exitCode?: number };
