// A small MCP server on the official TypeScript SDK, for the corpus. Written against the API
// every 1.x release since Streamable HTTP has (McpServer.tool, StreamableHTTPServerTransport,
// SSEServerTransport), so one file serves the early and the current release.
//
// usage: node sdk_server.cjs SDK_DIR PORT stateful-sse|stateful-json|stateless-json|stateless-sse|sse
// Binds 127.0.0.1 only.
const http = require("http");
const { randomUUID } = require("crypto");
const { z } = require("zod");

const [sdkDir, portArg, mode] = process.argv.slice(2);
const { McpServer } = require(`${sdkDir}/dist/cjs/server/mcp.js`);
const { StreamableHTTPServerTransport } = require(`${sdkDir}/dist/cjs/server/streamableHttp.js`);
const { SSEServerTransport } = require(`${sdkDir}/dist/cjs/server/sse.js`);
const version = require(`${sdkDir}/package.json`).version;

function newServer() {
  const server = new McpServer({ name: "ts-interop", version });
  const text = (t) => ({ content: [{ type: "text", text: String(t) }] });
  server.tool("add", "Add two integers.", { a: z.number().int(), b: z.number().int() }, ({ a, b }) => text(a + b));
  server.tool(
    "echo",
    "Echo a message back.",
    { message: z.string(), loud: z.boolean().optional() },
    ({ message, loud }) => text(loud ? message.toUpperCase() : message),
  );
  server.tool("word_count", "Count the words of a text.", { text: z.string() }, ({ text: t }) =>
    text(t.split(/\s+/).filter(Boolean).length),
  );
  return server;
}

function readJson(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      try {
        resolve(body ? JSON.parse(body) : undefined);
      } catch {
        resolve(undefined);
      }
    });
  });
}

const sessions = new Map(); // session id -> Streamable transport, or SSE transport
const json = mode.endsWith("json");

async function streamable(req, res) {
  const body = req.method === "POST" ? await readJson(req) : undefined;
  if (mode.startsWith("stateless")) {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
    await newServer().connect(transport);
    return transport.handleRequest(req, res, body);
  }
  const sid = req.headers["mcp-session-id"];
  let transport = sid && sessions.get(sid);
  if (!transport && req.method === "POST" && body && body.method === "initialize") {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: json,
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await newServer().connect(transport);
  }
  if (!transport) {
    res.writeHead(400, { "content-type": "application/json" });
    return res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "Bad Request: No valid session ID provided" } }));
  }
  return transport.handleRequest(req, res, body);
}

async function legacySse(req, res, url) {
  if (req.method === "GET" && url.pathname === "/sse") {
    const transport = new SSEServerTransport("/messages", res);
    sessions.set(transport.sessionId, transport);
    res.on("close", () => sessions.delete(transport.sessionId));
    return newServer().connect(transport);
  }
  if (req.method === "POST" && url.pathname === "/messages") {
    const transport = sessions.get(url.searchParams.get("sessionId"));
    if (!transport) return res.writeHead(404).end("unknown session");
    return transport.handlePostMessage(req, res, await readJson(req));
  }
  res.writeHead(404).end("not found");
}

http
  .createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const handle = mode === "sse" ? legacySse(req, res, url) : url.pathname === "/mcp" ? streamable(req, res) : res.writeHead(404).end();
    Promise.resolve(handle).catch((e) => {
      console.error(e);
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
  })
  .listen(Number(portArg), "127.0.0.1");
