"""A store client that works as fast as it can until it is killed: claim, phases, complete or
fail. After each write the store acknowledged, it appends the fact to an ack log (flushed), so
the harness can check that nothing acknowledged is ever lost. The store is whichever the
environment names (POSTDECK_STORE: PostgreSQL, else the campaign's CSV file).

    python hammer.py CAMPAIGN_ROOT CAMPAIGNS_DIR WORKER_ID ACK_LOG SEED
"""
import os
import random
import sys

sys.path.insert(0, os.environ["POSTDECK_REPO"])

from engine.context import PostingContext  # noqa: E402
from engine.lifecycle import RetryPolicy  # noqa: E402
from engine.store import open_store  # noqa: E402
from engine.tracker import ClaimLost  # noqa: E402

root, campaigns_dir, worker, ack_path, seed = sys.argv[1:6]
rng = random.Random(int(seed))
ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
store = open_store(ctx, retry=RetryPolicy(0.0, 3), run_id="hammer")
ack = open(ack_path, "a", buffering=1)
ack.write(f"start {os.getpid()}\n")
while True:
    job = store.claim(worker)
    if job is None:
        ack.write("idle\n")
        break
    jid, cid = job["job_id"], job["claim_id"]
    try:
        store.set_phase(jid, cid, "preparing")
        store.set_phase(jid, cid, "publishing")
        if rng.random() < 0.8:
            store.complete(jid, cid)
            ack.write(f"success {jid}\n")
        else:
            row = store.fail(jid, cid, "adb timeout while pushing")
            ack.write(f"{row['status']} {jid}\n")
    except ClaimLost:
        ack.write(f"lost {jid}\n")
