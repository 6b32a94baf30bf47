"""Schemathesis hooks of the fuzz run (tests/api/contract.rs).

Only what a schema cannot say is set here:
- each request gets an `Idempotency-Key` of its own: the same key with
  another body is refused by design (a 422), and the fuzzer reuses short keys;
- a job's `webhook_url` names the test receiver's host: whether a host is
  internal (refused) is a DNS answer, not something a schema can state;
- the run's own admin key is never revoked, and its own tenant's limits and
  model credential are never changed, so the run keeps the access, quota and
  model it started with;
- a value the stateful phase carries over from a response into a request
  that should be valid but breaks the parameter's schema (`Last-Event-ID:
  null`) is dropped: the fuzzer's own slip, not the server's;
- a negative multipart case whose only flaw is a field's type is not sent:
  every field of `multipart/form-data` is text on the wire, so an object or
  a number is sent as its text, which the server rightly takes as the
  string it is (file fields aside, which the check leaves alone).
"""

import os
import re
import uuid

import schemathesis
from schemathesis.generation import GenerationMode

EVENT_ID = re.compile(r"^[0-9]{1,18}$")

OWN_KEY_ID = os.environ.get("FUZZ_OWN_KEY_ID", "")
OWN_TENANT = os.environ.get("FUZZ_OWN_TENANT", "")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = f"fuzz-{uuid.uuid4()}"
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    for name in list(headers):
        if positive and name.lower() == "last-event-id" and not EVENT_ID.match(str(headers[name])):
            del headers[name]
    if isinstance(case.body, dict) and isinstance(case.body.get("webhook_url"), str):
        case.body["webhook_url"] = "http://127.0.0.1:9/fuzz-receiver"


@schemathesis.hook
def filter_case(ctx, case):
    path = case.operation.path
    params = case.path_parameters or {}
    if path.endswith("/admin/keys/{id}/revoke") and params.get("id") == OWN_KEY_ID:
        return False
    if path.endswith("/admin/tenants/{id}") and params.get("id") == OWN_TENANT:
        return False
    if path.endswith("/admin/tenants/{id}/model-credential") and params.get("id") == OWN_TENANT:
        return False
    negative = case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE
    multipart = (case.media_type or "").startswith("multipart/")
    if negative and multipart and isinstance(case.body, dict):
        fields = {k: v for k, v in case.body.items() if k != "files"}
        if any(not isinstance(v, (str, bytes)) for v in fields.values()):
            return False
    return True
