"""A small MCP server on the official Python SDK (mcp 2.x), for mcpwatch's interop test.

usage: sdk2_server.py PORT stateful-sse|stateful-json|stateless-json|stateless-sse|sse
Binds 127.0.0.1 only.
"""

import sys

from mcp.server.mcpserver import MCPServer

port = int(sys.argv[1])
mode = sys.argv[2]

app = MCPServer("py-interop", version="0.0.1")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def echo(message: str, loud: bool = False) -> str:
    """Echo a message back."""
    return message.upper() if loud else message


@app.tool()
def word_count(text: str) -> dict:
    """Count the words of a text."""
    return {"words": len(text.split())}


if mode == "sse":
    app.run("sse", host="127.0.0.1", port=port)
else:
    app.run(
        "streamable-http",
        host="127.0.0.1",
        port=port,
        json_response=mode.endswith("json"),
        stateless_http=mode.startswith("stateless"),
    )
