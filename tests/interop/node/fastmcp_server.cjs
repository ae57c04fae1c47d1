// A small MCP server on npm `fastmcp` (the TypeScript framework), for the corpus.
// usage: node fastmcp_server.cjs PORT — serves /mcp (its httpStream transport) on 127.0.0.1.
const { FastMCP } = require("fastmcp");
const { z } = require("zod");

const server = new FastMCP({ name: "fastmcp-ts-interop", version: "0.0.1" });
server.addTool({
  name: "add",
  description: "Add two integers.",
  parameters: z.object({ a: z.number().int(), b: z.number().int() }),
  execute: async ({ a, b }) => String(a + b),
});
server.addTool({
  name: "echo",
  description: "Echo a message back.",
  parameters: z.object({ message: z.string(), loud: z.boolean().optional() }),
  execute: async ({ message, loud }) => (loud ? message.toUpperCase() : message),
});
server.addTool({
  name: "word_count",
  description: "Count the words of a text.",
  parameters: z.object({ text: z.string() }),
  execute: async ({ text }) => String(text.split(/\s+/).filter(Boolean).length),
});
server.start({
  transportType: "httpStream",
  httpStream: { port: Number(process.argv[2]), host: "127.0.0.1", endpoint: "/mcp" },
});
