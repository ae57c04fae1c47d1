"""A small MCP server on the official Python SDK 1.x (`mcp.server.fastmcp`), for the corpus.

usage: sdk1_server.py PORT stateful-sse|stateful-json|stateless-json|stateless-sse|sse [progress]
Binds 127.0.0.1 only. The same tools as every server in the corpus; with `progress`, also
`count_slowly`, which reports progress as it runs (the streaming check's tool).
"""

import asyncio
import sys

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

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


if sys.argv[3:] == ["progress"]:

    @app.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def count_slowly(steps: int, ctx: Context) -> str:
        """Count to `steps`, a quarter of a second each, reporting progress."""
        for step in range(1, steps + 1):
            await asyncio.sleep(0.25)
            await ctx.report_progress(step, steps)
        return f"counted to {steps}"


app.run("sse" if mode == "sse" else "streamable-http")
