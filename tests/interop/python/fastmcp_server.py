"""A small MCP server on PyPI `fastmcp` (2.x and later), for the corpus.

usage: fastmcp_server.py PORT http|sse
Binds 127.0.0.1 only. The same tools as every server in the corpus.
"""

import sys

from fastmcp import FastMCP

port = int(sys.argv[1])
mode = sys.argv[2]

app = FastMCP("fastmcp-interop")


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


app.run(transport=mode, host="127.0.0.1", port=port, show_banner=False)
