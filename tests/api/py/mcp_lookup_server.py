"""A remote MCP server (streamable HTTP, the official SDK) that answers only
requests carrying `Authorization: <expected>`: the tests' stand-in for a
team's glossary service. Usage: mcp_lookup_server.py PORT EXPECTED_AUTHORIZATION"""

import sys

import uvicorn
from mcp.server.fastmcp import FastMCP

port, expected = int(sys.argv[1]), sys.argv[2].encode()
server = FastMCP("glossary", host="127.0.0.1", port=port, log_level="WARNING")


@server.tool()
def lookup(word: str) -> str:
    """Looks a word up in the team's glossary."""
    return f"glossary entry for {word}: LOOKUP-ANSWER-7731"


app = server.streamable_http_app()


async def guarded(scope, receive, send):
    if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"unauthorized"})
        return
    await app(scope, receive, send)


uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning")
