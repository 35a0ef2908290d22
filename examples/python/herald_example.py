#!/usr/bin/env python3
"""Herald from Python with the standard library only: prepare, local transaction, confirm or
cancel, and a signed check-back endpoint answering from a barrier table.

The producer's database here is SQLite (it ships with Python); the pattern is the same on MySQL:
the business write and a row in `herald_barrier` commit in one transaction, and the check-back
answers from that table alone (no row -> insert a `rollback` row and answer rollback, so a late
local commit can no longer succeed).

  python3 examples/python/herald_example.py --herald http://localhost:3000 \
      --token herald-dev-producer-token-NOT-FOR-PRODUCTION \
      --check-secret whsec_ZGV2ZWxvcG1lbnQtb25seS1jaGVjay1zZWNyZXQtaGVyYWxk

That is `npm run up`'s development producer token and check-back secret (HERALD_CHECK_SECRET; a
producer whose key sets its own `checkSecret` in Herald's keys file passes that one instead):
published in the repository, for a local Herald only. The check endpoint listens on 127.0.0.1, so
Herald must allow private URLs (HERALD_ALLOW_PRIVATE_URLS=true, which `npm run up` sets).

Modes: commit (the happy path), rollback (the local transaction fails -> cancel),
crash-after-commit (commit locally, never confirm: the check-back commits),
crash-before-commit (prepare, then nothing: the check-back rolls back).
Whatever the mode, what is sent after the local transaction depends only on whether it committed:
confirm if it did, cancel if it did not (--order-exists makes the commit mode's transaction fail).
--check-after-ms sets Herald's first check: long by default, because on the normal path the
producer confirms or cancels itself; the crash modes pass a short one to see the check-back.
Prints one JSON line per step and exits 0 when the message ends as the mode expects.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

TOLERANCE_SECONDS = 300


def log(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def call(herald, token, method, path, body=None):
    """One Herald API call; retried on network errors and 5xx (prepare with an id, confirm and
    cancel are idempotent, so repeating them is safe)."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(5):
        req = urllib.request.Request(herald + path, data=data, method=method)
        req.add_header("authorization", "Bearer " + token)
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == 4:
                return err.code, json.loads(err.read() or b"null")
        except OSError:
            if attempt == 4:
                raise
        time.sleep(0.1 * 2 ** attempt)


def verify(secret, headers, body):
    """Standard Webhooks: v1,<base64 HMAC-SHA256 of "id.timestamp.body"> keyed with the base64
    part of whsec_..., compared in constant time, with a timestamp tolerance against replays."""
    msg_id, stamp, signatures = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not (msg_id and stamp and signatures and stamp.isdigit()):
        return None
    if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        return None
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return msg_id
    return None


def answer_from_barrier(db_path, message_id):
    conn = sqlite3.connect(db_path, timeout=5, isolation_level=None)
    try:
        conn.execute("INSERT INTO herald_barrier (message_id, outcome) VALUES (?, 'rollback')", (message_id,))
        return "rollback"
    except sqlite3.IntegrityError:
        row = conn.execute("SELECT outcome FROM herald_barrier WHERE message_id = ?", (message_id,)).fetchone()
        return row[0] if row else "unknown"
    except sqlite3.OperationalError:  # locked by a transaction that is committing: ask again later
        return "unknown"
    finally:
        conn.close()


def start_check_server(db_path, secret, calls):
    class CheckHandler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(min(int(self.headers.get("content-length", 0)), 16384))
            signed_id = verify(secret, {k.lower(): v for k, v in self.headers.items()}, body)
            try:
                message_id = json.loads(body)["id"]
            except (ValueError, KeyError, TypeError):
                message_id = None
            if signed_id is None or message_id is None or not signed_id.startswith(f"{message_id}:check:"):
                log("check-refused", reason="bad signature or id")
                return self.reply(401, {"error": "not signed by Herald"})
            status = answer_from_barrier(db_path, message_id)
            calls.append(status)
            log("check-answered", id=message_id, status=status)
            self.reply(200, {"status": status})

        def reply(self, code, value):
            payload = json.dumps(value).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CheckHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--herald", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--check-secret", required=True)
    p.add_argument("--topic", default="order.paid")
    p.add_argument("--order", default="1001")
    p.add_argument("--mode", choices=["commit", "rollback", "crash-after-commit", "crash-before-commit"], default="commit")
    p.add_argument("--check-after-ms", type=int, default=60000)
    p.add_argument("--order-exists", action="store_true", help="the order row is already there, so the local insert fails")
    args = p.parse_args()

    db_path = os.path.join(tempfile.mkdtemp(prefix="herald-py-"), "orders.db")
    setup = sqlite3.connect(db_path)
    setup.executescript("""
        CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL);
        CREATE TABLE herald_barrier (message_id TEXT PRIMARY KEY, outcome TEXT NOT NULL);
    """)
    if args.order_exists:
        setup.execute("INSERT INTO orders (id, status) VALUES (?, 'paid')", (args.order,))
        setup.commit()
    setup.close()
    calls = []
    server = start_check_server(db_path, args.check_secret, calls)
    check_url = f"http://127.0.0.1:{server.server_address[1]}/herald/check"

    # 1. prepare, with an id chosen here so a retried prepare finds the same message.
    message_id = f"py-order-{args.order}-{uuid.uuid4().hex[:8]}"
    status, message = call(args.herald, args.token, "POST", "/v1/messages", {
        "id": message_id, "topic": args.topic, "key": f"order-{args.order}",
        "payload": {"orderId": args.order, "paid": True},
        "checkUrl": check_url, "checkAfterMs": args.check_after_ms, "checkIntervalMs": 200,
    })
    log("prepared", id=message_id, http=status, status=message.get("status"))
    if status not in (200, 201):
        return 1

    # 2. the local transaction: the business write and the barrier row, together.
    committed = False
    if args.mode != "crash-before-commit":
        conn = sqlite3.connect(db_path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO orders (id, status) VALUES (?, 'paid')", (args.order,))
            if args.mode == "rollback":
                raise RuntimeError("payment declined")
            conn.execute("INSERT INTO herald_barrier (message_id, outcome) VALUES (?, 'commit')", (message_id,))
            conn.execute("COMMIT")
            committed = True
            log("local-commit", order=args.order)
        except (RuntimeError, sqlite3.Error) as err:
            conn.execute("ROLLBACK")
            log("local-rollback", reason=str(err))
        finally:
            conn.close()

    # 3. confirm or cancel, unless this run plays a crash. Only a committed local transaction may
    # be confirmed: confirming after a failed one would publish an event for a change that never
    # happened.
    expected = "confirmed" if committed else "cancelled"
    if args.mode in ("commit", "rollback"):
        if committed:
            status, message = call(args.herald, args.token, "POST", f"/v1/messages/{message_id}/confirm")
            log("confirmed", http=status, status=message.get("status"))
        else:
            status, message = call(args.herald, args.token, "POST", f"/v1/messages/{message_id}/cancel")
            log("cancelled", http=status, status=message.get("status"))
    else:
        log("crashed", note="no confirm or cancel sent; waiting for Herald's check-back")

    # 4. wait for Herald to settle it.
    deadline = time.time() + 20
    while time.time() < deadline:
        status, message = call(args.herald, args.token, "GET", f"/v1/messages/{message_id}")
        if message.get("status") in ("confirmed", "delivered", "cancelled"):
            break
        time.sleep(0.1)
    final = message.get("status")
    ok = (final in ("confirmed", "delivered")) == (expected == "confirmed") and final != "prepared"
    log("settled", id=message_id, status=final, checks=calls, ok=ok)
    server.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
