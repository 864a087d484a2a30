#!/usr/bin/env python3
"""moto's server (`python -m moto.server`, same arguments), with speed-ups to
its SQS model that change no answer it gives.

moto 5.2 rebuilds a queue's whole attribute map, counting every message it
holds three times, for each message it hands out (to check the retention
period), and converts every attribute name from CamelCase on each rebuild. A
queue of a thousand messages then serves a few dozen messages a second, and a
test that lets a backlog form (an outage, a slow consumer) measures moto
instead of the system under test. The patches:

- the retention check reads the queue's retention period directly: the same
  integer the attribute map holds;
- the CamelCase → snake_case conversion, a pure function of a constant
  attribute name, is memoised;
- a queue's visible-message list and its three message counts read the clock
  once per call instead of once or twice per message, and compare each
  message's own `visible_at` / `delayed_until` as `Message.visible` and
  `Message.delayed` do.

And one to its DynamoDB model: `TransactWriteItems` backs up a whole table
(`copy.deepcopy`) once per item of the transaction, to roll back if one
fails; with 10,000 alerts in the state table, a transaction of 10 takes
seconds. For a table with no sort key and no stream, the patch backs up only
the items the transaction names (the only ones it can change) and restores
exactly those on failure; other tables take moto's own path.

And one to its STS model, to refuse what AWS refuses: moto lets anyone
assume any role ARN, existing or not. The patch refuses `AssumeRole` with
`AccessDenied` when the role does not exist in its account, or when its
trust policy requires an `sts:ExternalId` the caller did not send. (It does
not judge the trust policy's principals.) `OrganizationAccountAccessRole`
is always allowed: AWS Organizations creates it in every account it creates,
and the tests use it to set up member accounts, as an administrator does.
`AssumeRoleWithWebIdentity` (IRSA) keeps moto's behaviour.

Every test, the demo and the benchmarks start moto through this file. The
patches fail loudly if the moto version no longer has what they replace.
"""
import functools
import sys

from moto.core.utils import unix_time, unix_time_millis
from moto.server import main
from moto.sqs import models


def _patch():
    backend, queue = models.SQSBackend, models.Queue
    needed = [(backend, "is_message_valid_based_on_retention_period"), (models, "camelcase_to_underscores"),
              (queue, "messages"), (queue, "approximate_number_of_messages"),
              (queue, "approximate_number_of_messages_not_visible"),
              (queue, "approximate_number_of_messages_delayed")]
    if not all(hasattr(owner, name) for owner, name in needed):
        sys.exit("moto_server.py: this moto no longer has the SQS internals it speeds up; "
                 "check infra/local/moto_server.py against moto's sqs/models.py")

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        retention_period = self.get_queue(queue_name).message_retention_period
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    models.camelcase_to_underscores = functools.lru_cache(maxsize=None)(models.camelcase_to_underscores)

    # Message.visible is `now > visible_at`; Message.delayed is `now < delayed_until`.
    def messages(self):
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def not_visible(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def delayed(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    queue.messages = property(messages)
    queue.approximate_number_of_messages = property(lambda self: len(messages(self)))
    queue.approximate_number_of_messages_not_visible = property(not_visible)
    queue.approximate_number_of_messages_delayed = property(delayed)


def _patch_dynamodb():
    import copy
    import threading

    from moto.dynamodb import models as ddb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = ddb.DynamoDBBackend
    if not (hasattr(backend, "transact_write_items") and getattr(ddb, "copy", None) is copy):
        sys.exit("moto_server.py: this moto no longer backs up tables the way the DynamoDB patch "
                 "expects; check infra/local/moto_server.py against moto's dynamodb/models/__init__.py")
    original = backend.transact_write_items
    fast = threading.local()

    class TableCopiesSkipped:
        """`copy` as the DynamoDB backend sees it: a table is not copied
        while a patched transaction runs (it keeps its own item backups)."""

        def __getattr__(self, name):
            return getattr(copy, name)

        def deepcopy(self, obj, memo=None):
            if getattr(fast, "on", False) and isinstance(obj, Table):
                return obj
            return copy.deepcopy(obj, memo)

    def touched(self, transact_items):
        """[(table, hash key, a copy of its item or None: absent)], or None
        when a target is not a plain hash-key table without a stream."""
        backups = []
        for entry in transact_items:
            if len(entry) != 1:
                return None
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None or table.has_range_key or table.stream_shard is not None:
                return None
            value = (op.get("Item") or op.get("Key") or {}).get(table.hash_key_attr)
            if value is None:
                return None
            key = DynamoType(value)
            backups.append((table, key, copy.deepcopy(table.items.get(key))))
        return backups

    def transact_write_items(self, transact_items):
        backups = touched(self, transact_items) if len(transact_items) <= 100 else None
        if backups is None:
            return original(self, transact_items)
        fast.on = True
        try:
            return original(self, transact_items)
        except BaseException:
            for table, key, item in reversed(backups):
                if item is None:
                    table.items.pop(key, None)
                else:
                    table.items[key] = item
            raise
        finally:
            fast.on = False

    ddb.copy = TableCopiesSkipped()
    backend.transact_write_items = transact_write_items


def _patch_sts():
    import json

    from moto.iam.models import iam_backends
    from moto.sts import models as sts
    from moto.sts.exceptions import STSClientError
    from moto.utilities.utils import get_partition

    backend = sts.STSBackend
    if not hasattr(backend, "assume_role"):
        sys.exit("moto_server.py: this moto's STS has no assume_role to patch")
    original = backend.assume_role

    def external_ids(trust):
        """The sts:ExternalId values a trust policy's Allow statements require."""
        wanted = set()
        statements = trust.get("Statement", [])
        for st in statements if isinstance(statements, list) else [statements]:
            for test in (st.get("Condition") or {}).values():
                value = test.get("sts:ExternalId") if isinstance(test, dict) else None
                if value is not None:
                    wanted.update(value if isinstance(value, list) else [value])
        return wanted

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        parts = role_arn.split(":")
        name = parts[5].split("/")[-1] if len(parts) == 6 else ""
        if name != "OrganizationAccountAccessRole":
            denied = STSClientError(
                "AccessDenied",
                f"User: arn:aws:iam::{self.account_id}:assumed-role/caller is not authorized "
                f"to perform: sts:AssumeRole on resource: {role_arn}")
            account = parts[4] if len(parts) == 6 else ""
            try:
                role = iam_backends[account][get_partition(region_name)].get_role_by_arn(role_arn)
            except Exception:
                raise denied
            doc = role.assume_role_policy_document
            trust = json.loads(doc) if isinstance(doc, str) else (doc or {})
            wanted = external_ids(trust)
            if wanted and external_id not in wanted:
                raise denied
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    backend.assume_role = assume_role
    # moto's AssumeRoleWithWebIdentity goes through assume_role; IRSA and
    # Pod Identity roles keep moto's own behaviour (the tests' web-identity
    # roles are not created in IAM).
    backend.assume_role_with_web_identity = lambda self, **kwargs: original(self, **kwargs)


if __name__ == "__main__":
    _patch()
    _patch_dynamodb()
    _patch_sts()
    main(sys.argv[1:])
