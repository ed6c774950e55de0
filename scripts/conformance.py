#!/usr/bin/env python3
"""Run the external SCIM conformance checker scim2-tester against a live hub.

  conformance.py URL TOKEN

Prints one line per check and a closing 'N passed, N failed' line; exits 1 when any
check reports an error or a critical result (a MUST of RFC 7643/7644 broken).
"""
import sys
from datetime import datetime, timezone

import httpx2
import scim2_tester.checkers.patch_add as patch_add
import scim2_tester.checkers.patch_replace as patch_replace
import scim2_tester.filling as filling
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import Status

FAILING = {Status.ERROR, Status.CRITICAL}

_generate = filling.generate_random_value


def _generate_with_datetimes(context, path, mutability=None, required=None):
    """scim2-tester 0.5 fills dateTime attributes with UUID strings, which its own models
    then refuse; give it an xsd:dateTime instead (our healthcare extension has one)."""
    value = _generate(context, path, mutability, required)
    binding = path.resolve()
    if value is not None and binding is not None and binding.target_type is datetime:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        return [now] if binding.target_is_multivalued else now
    return value


for module in (filling, patch_add, patch_replace):
    module.generate_random_value = _generate_with_datetimes


def rfc_append(result) -> bool:
    """True for a `patch:add` result on a multi-valued attribute where the server kept the
    earlier values and appended the patched ones: RFC 7644 §3.5.2.1 ("a new value is added")
    requires exactly that; scim2-tester 0.5 expects only the patched values when an earlier
    check on the same resource (the whole extension) already set the attribute."""
    data = getattr(result, "data", None) or {}
    expected, actual = data.get("expected"), data.get("modify_actual", data.get("actual"))
    if getattr(result, "title", "") != "check_add_attribute":
        return False
    if not isinstance(expected, list) or not isinstance(actual, list) or len(actual) <= len(expected):
        return False
    return actual[-len(expected):] == expected


def main() -> int:
    url, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    passed = failed = skipped = 0
    for r in results:
        status = r.status
        name = getattr(r, "title", "?")
        resource = getattr(r, "resource_type", None)
        label = f"{name}" + (f" [{resource}]" if resource else "")
        if status in FAILING and rfc_append(r):
            passed += 1
            print(f"ok   RFC-APPEND {label}: kept earlier values and appended (RFC 7644 §3.5.2.1)")
        elif status in FAILING:
            failed += 1
            print(f"FAIL {status.name:<10} {label}: {getattr(r, 'reason', '')}")
        elif status == Status.SKIPPED:
            skipped += 1
            print(f"skip {label}: {getattr(r, 'reason', '')}")
        else:
            passed += 1
            print(f"ok   {status.name:<10} {label}")
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
