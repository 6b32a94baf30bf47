"""Schemathesis hooks of the fuzz run (tests/api/contract.rs).

Only what a schema cannot say is set here:
- each request gets an `Idempotency-Key` of its own: the same key with
  another body is refused by design (a 422), and the fuzzer reuses short keys;
- the run's own admin key is never revoked, and its own tenant's limits are
  never changed, so the run keeps the access and quota it started with.
"""

import os
import uuid

import schemathesis

OWN_KEY_ID = os.environ.get("FUZZ_OWN_KEY_ID", "")
OWN_TENANT = os.environ.get("FUZZ_OWN_TENANT", "")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = f"fuzz-{uuid.uuid4()}"


@schemathesis.hook
def filter_case(ctx, case):
    path = case.operation.path
    params = case.path_parameters or {}
    if path.endswith("/admin/keys/{id}/revoke") and params.get("id") == OWN_KEY_ID:
        return False
    if path.endswith("/admin/tenants/{id}") and params.get("id") == OWN_TENANT:
        return False
    return True
