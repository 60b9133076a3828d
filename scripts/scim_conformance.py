#!/usr/bin/env python3
"""Runs the public SCIM conformance checker scim2-tester against a live tenure SCIM server.

    scim_conformance.py BASE_URL TOKEN

BASE_URL is the SCIM root (http://127.0.0.1:8080/scim/v2), TOKEN a tenure token with the `scim`
scope. Prints every check with its status and exits non-zero when any check reports an error.

Every check of both resource types runs: Users, and Groups (which an identity provider creates,
replaces, patches and deletes; tenure's own entitlements are listed beside them, read-only).
"""

import datetime
import sys

import scim2_tester.checkers.patch_add as patch_add
import scim2_tester.checkers.patch_replace as patch_replace
import scim2_tester.filling as filling
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# scim2-tester 0.5.2 fills attributes of type dateTime with a random UUID string, which its own
# models then refuse ("Input should be a valid datetime"), so any server publishing a dateTime
# attribute outside `meta` fails on the checker's side. tenure's lifecycle extension has two
# (startDate, endDate). Give them a real dateTime; every other value is generated unchanged.
_generate = filling.generate_random_value


# It also fills a Group's `members.value` with a random UUID, which tenure refuses as naming no
# known user (as RFC 7644 lets a server refuse a member it cannot resolve). Create a real User
# for each member instead, the way the checker itself creates resources that references name.
def _is_member_value(path):
    if str(path).lower().endswith("members.value"):
        return True
    binding = path.resolve()
    model = binding.target_model if binding else None
    return (
        binding is not None
        and binding.target_field_name == "value"
        and model is not None
        and "member" in model.__name__.lower()
    )


def _generate_with_datetimes(context, path, mutability=None, required=None):
    binding = path.resolve()
    if _is_member_value(path) and binding is not None:
        if mutability is not None and binding.get_annotation(filling.Mutability) not in mutability:
            return None
        user = context.resource_manager.create_and_register(context.client.get_resource_model("User"))
        return user.id
    if binding is not None and binding.target_type is datetime.datetime:
        if mutability is not None and binding.get_annotation(filling.Mutability) not in mutability:
            return None
        value = datetime.datetime(2030, 1, 31, tzinfo=datetime.timezone.utc)
        return [value] if binding.target_is_multivalued else value
    return _generate(context, path, mutability=mutability, required=required)


filling.generate_random_value = _generate_with_datetimes
patch_add.generate_random_value = _generate_with_datetimes
patch_replace.generate_random_value = _generate_with_datetimes


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client, resource_types=["User", "Group"])
    bad = 0
    for r in results:
        flag = r.status.name
        where = f"[{r.resource_type}] " if r.resource_type else ""
        line = f"{flag:<10} {where}{r.title}"
        if r.reason and r.status != Status.SUCCESS:
            line += f": {r.reason}"
        print(line)
        if r.status == Status.ERROR:
            bad += 1
    print(f"\nscim2-tester: {len(results)} checks, {bad} errors")
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
