"""A small MCP server on the official Python SDK 1.x (`mcp.server.fastmcp`), for the corpus.

usage: sdk1_server.py PORT stateful-sse|stateful-json|stateless-json|stateless-sse|sse
Binds 127.0.0.1 only. The same tools as every server in the corpus.
"""

import sys

from mcp.server.fastmcp import FastMCP

port = int(sys.argv[1])
mode = sys.argv[2]

app = FastMCP(
    "py1-interop",
    host="127.0.0.1",
    port=port,
    stateless_http=mode.startswith("stateless"),
    json_response=mode.endswith("json"),
)


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


app.run("sse" if mode == "sse" else "streamable-http")
