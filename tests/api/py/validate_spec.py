"""Validates the served OpenAPI document against the official OpenAPI 3.1
schema with `openapi-spec-validator`. Prints one JSON line for the served
document and one for a copy carrying a defect the document once had (a
`$ref` response with `"content": null`), which must be refused: proof that
the validator sees such faults at all.

Usage: validate_spec.py DOCUMENT_URL
"""

import copy
import json
import sys
import urllib.request

from openapi_spec_validator import OpenAPIV31SpecValidator


def errors(document):
    try:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in OpenAPIV31SpecValidator(document).iter_errors()
        ]
    except Exception as e:  # the validator gives up on some malformed documents
        return [f"the validator could not read the document: {e!r}"]


document = json.load(urllib.request.urlopen(sys.argv[1]))
print(json.dumps({"step": "served", "openapi": document.get("openapi"), "errors": errors(document)}))

broken = copy.deepcopy(document)
broken["paths"]["/api/v1/sessions"]["get"]["responses"]["401"]["content"] = None
print(json.dumps({"step": "broken", "errors": errors(broken)}))
