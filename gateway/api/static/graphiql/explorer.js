// Starts GraphiQL against this gateway. Queries and mutations go over HTTP with the headers typed in
// GraphiQL's Headers tab; subscriptions go over the graphql-transport-ws websocket with the same
// Authorization header (the console's client, so both pages speak the protocol the same way).
import { LiveClient } from "../console/gql.js";

const url = new URL("/graphql", window.location.href).toString();
const token = sessionStorage.getItem("alana.gateway.token");
const EXAMPLE = `# The Alana Integration Gateway. Put your token in the Headers tab below:
#   {"Authorization": "Bearer <token>"}
# Run with Ctrl-Enter. Subscriptions (syncProgress, integrationEvents) stream their results here.
{
  integrations {
    name
    platform
    productCount
    health { status reason action lastSyncAt nextSyncAt }
    syncRuns(first: 3) { status summary { added updated unchanged removed failed } }
  }
}
`;

function isSubscription(query, operationName) {
  const text = query.replace(/#[^\n]*/g, "");
  const ops = [...text.matchAll(/\b(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?/g)];
  const op = operationName ? ops.find((m) => m[2] === operationName) : ops[0];
  return Boolean(op && op[1] === "subscription");
}

function authorization(headers) {
  for (const [key, value] of Object.entries(headers || {})) if (key.toLowerCase() === "authorization") return String(value);
  return "";
}

async function* subscribe(params, headers) {
  const queue = [];
  let wake = null;
  let done = false;
  const push = (item) => {
    queue.push(item);
    if (wake) wake();
  };
  const client = new LiveClient(url, authorization(headers).replace(/^Bearer\s+/i, ""));
  client.subscribe(params.query, params.variables, {
    next: (data) => push({ data }),
    error: (exc) => push({ errors: exc.errors && exc.errors.length ? exc.errors : [{ message: exc.message }], end: true }),
    complete: () => push({ end: true }),
  });
  try {
    while (!done) {
      if (!queue.length) await new Promise((resolve) => (wake = resolve));
      wake = null;
      const item = queue.shift();
      if (item.end) done = true;
      if (item.data || item.errors) yield item.errors ? { errors: item.errors } : { data: item.data };
    }
  } finally {
    client.close();
  }
}

const http = GraphiQL.createFetcher({ url });
function fetcher(params, options) {
  if (isSubscription(params.query || "", params.operationName)) return subscribe(params, options && options.headers);
  return http(params, options);
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: EXAMPLE,
    defaultHeaders: JSON.stringify({ Authorization: token ? `Bearer ${token}` : "Bearer <token>" }, null, 2),
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }),
);
