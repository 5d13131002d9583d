# A flow with a branch and a failure notification, written as for Prefect 1 (only the
# imports differ): `case` picks how the orders are processed, `merge` joins the two
# branches, and a state handler posts to a webhook when a task or the flow run fails.
#
#   orchestrator register examples/branch_and_notify.py --project examples
#   NOTIFY_WEBHOOK_URL=https://hooks.slack.com/services/... orchestrator worker
#   orchestrator run process-orders --project examples --param 'orders=[5, -1]' --wait
import json
import os
import urllib.request

from orchestrator import Flow, Parameter, case, merge, task
from orchestrator.context import current


def notify_on_failure(obj, old_state, new_state):
    """Post a message to the webhook in NOTIFY_WEBHOOK_URL when a run fails."""
    url = os.environ.get("NOTIFY_WEBHOOK_URL")
    if new_state.is_failed() and url:
        ctx = current()
        run = ctx.flow_run_id if ctx else None
        text = f"{obj.name} failed: {new_state.message} (flow run {run})"
        request = urllib.request.Request(
            url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10)
    return new_state


@task
def is_large(orders):
    return len(orders) > 3


@task
def process_in_batches(orders):
    return {"processed": len(orders), "how": "in batches"}


@task(state_handlers=[notify_on_failure])
def process_at_once(orders):
    for order in orders:
        if order < 0:
            raise ValueError(f"order {order} is negative")
    return {"processed": len(orders), "how": "at once"}


@task
def report(summary):
    return f"{summary['processed']} orders processed {summary['how']}"


with Flow("process-orders", state_handlers=[notify_on_failure]) as flow:
    orders = Parameter("orders", default=[1, 2, 3])
    large = is_large(orders)
    with case(large, True):
        batched = process_in_batches(orders)
    with case(large, False):
        at_once = process_at_once(orders)
    report(merge(batched, at_once))
