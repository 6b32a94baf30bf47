"""A remote MCP server (the official SDK) that answers only requests carrying
`Authorization: <expected>`: the tests' stand-in for a team's glossary
service. Usage: mcp_lookup_server.py EXPECTED_AUTHORIZATION [http|sse]
It listens on a free loopback port and prints that port as its first line.
`http` serves streamable HTTP at /mcp, `sse` the older HTTP+SSE at /sse."""

import socket
import sys

import uvicorn
from mcp.server.fastmcp import FastMCP

expected = sys.argv[1].encode()
transport = sys.argv[2] if len(sys.argv) > 2 else "http"
server = FastMCP("glossary", host="127.0.0.1", log_level="WARNING")


@server.tool()
def lookup(word: str) -> str:
    """Looks a word up in the team's glossary."""
    return f"glossary entry for {word}: LOOKUP-ANSWER-7731"


app = server.sse_app() if transport == "sse" else server.streamable_http_app()


async def guarded(scope, receive, send):
    if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"unauthorized"})
        return
    await app(scope, receive, send)


# The port is taken here and kept: no other process can take it between a
# choice and the bind.
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(guarded, log_level="warning")).run(sockets=[listener])
