"""Drives /mcp with the official mcp package (streamable HTTP); prints one JSON line per step."""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.types import LATEST_PROTOCOL_VERSION
from mcp.client.streamable_http import streamablehttp_client
from pydantic import AnyUrl

base, key = sys.argv[1], sys.argv[2]


def emit(step, value):
    print(json.dumps({"step": step, "value": value}), flush=True)


def result(r):
    return {"isError": r.isError, "structured": r.structuredContent,
            "text": [c.text for c in r.content if c.type == "text"]}


async def main():
    headers = {"Authorization": f"Bearer {key}"}
    async with streamablehttp_client(base + "/mcp", headers=headers) as (read, write, session_id):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            emit("init", {"server": init.serverInfo.name, "version": init.protocolVersion,
                          "client_version": LATEST_PROTOCOL_VERSION, "session_id": session_id()})
            emit("tools", sorted(t.name for t in (await s.list_tools()).tools))
            emit("create", result(await s.call_tool("create_session", {"name": "mcp-s"})))
            emit("chat", result(await s.call_tool(
                "chat", {"session": "mcp-s", "message": "[[write out.txt]]from mcp[[/write]]"})))
            emit("get", result(await s.call_tool("get_session", {"name": "mcp-s"})))
            emit("list", result(await s.call_tool("list_sessions", {})))
            emit("history", result(await s.call_tool("get_history", {"session": "mcp-s"})))
            emit("files", result(await s.call_tool("list_files", {"session": "mcp-s"})))
            job = result(await s.call_tool("create_job", {"session": "mcp-s", "message": "job via mcp"}))
            emit("job", job)
            job_id = job["structured"]["data"]["id"]
            for _ in range(100):
                got = result(await s.call_tool("get_job", {"session": "mcp-s", "id": job_id}))
                if got["structured"]["data"]["status"] in ("done", "failed", "cancelled", "interrupted"):
                    break
                await asyncio.sleep(0.1)
            emit("get_job", got)
            emit("missing", result(await s.call_tool("get_session", {"name": "nope"})))
            emit("bad_name", result(await s.call_tool("get_session", {"name": "../x"})))
            resources = await s.list_resources()
            emit("resources", sorted(str(r.uri) for r in resources.resources))
            sessions = await s.read_resource(AnyUrl("cca://sessions"))
            emit("read_sessions", json.loads(sessions.contents[0].text))
            templates = await s.read_resource(AnyUrl("cca://templates"))
            emit("read_templates", json.loads(templates.contents[0].text))
            emit("delete", result(await s.call_tool("delete_session", {"name": "mcp-s"})))
            emit("after_delete", result(await s.call_tool("list_sessions", {})))


asyncio.run(main())
