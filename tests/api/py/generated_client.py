"""Generates a Python client from the served OpenAPI document with
`openapi-python-client`, then uses it to create a session, chat and read
the history. Prints one JSON line per step.

Usage: generated_client.py BASE_URL API_KEY WORK_DIR
"""

import json
import pathlib
import subprocess
import sys

base, key, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
config = work / "generator.yaml"
# No formatter is installed; archives and downloads (whatever their type)
# are bytes.
config.write_text(
    "post_hooks: []\n"
    "content_type_overrides:\n"
    "  application/gzip: application/octet-stream\n"
    "  '*/*': application/octet-stream\n"
)
generator = pathlib.Path(sys.executable).parent / "openapi-python-client"
run = subprocess.run(
    [str(generator), "generate", "--url", f"{base}/api/v1/openapi.json", "--meta", "none",
     "--output-path", str(work / "cca_client"), "--config", str(config), "--overwrite"],
    capture_output=True, text=True,
)
warnings = [l for l in (run.stdout + run.stderr).splitlines() if l.startswith("WARNING")]
print(json.dumps({"step": "generate", "status": run.returncode, "warnings": warnings,
                  "output": (run.stdout + run.stderr)[-3000:]}))
if run.returncode != 0:
    sys.exit(1)

sys.path.insert(0, str(work))
from cca_client import AuthenticatedClient  # noqa: E402
from cca_client.api.chat import chat  # noqa: E402
from cca_client.api.sessions import create_session, get_history  # noqa: E402
from cca_client.models import ChatRequest, CreateSession  # noqa: E402

client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)

created = create_session.sync_detailed(client=client, body=CreateSession(name="generated", max_turns=3))
print(json.dumps({"step": "create", "status": created.status_code, "type": type(created.parsed).__name__,
                  "name": created.parsed.data.name, "location": created.headers.get("location")}))

answer = chat.sync(name="generated", client=client, body=ChatRequest(message="Hello from a generated client"))
print(json.dumps({"step": "chat", "type": type(answer).__name__, "content": answer.data.content,
                  "cost_micros": answer.data.cost_micros, "is_error": answer.data.is_error}))

history = get_history.sync(name="generated", client=client)
print(json.dumps({"step": "history", "type": type(history).__name__,
                  "roles": [e.role for e in history.data],
                  "contents": [e.content for e in history.data],
                  "total": history.pagination.total}))
