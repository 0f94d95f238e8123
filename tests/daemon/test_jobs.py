"""Bulk jobs end to end: creation with placeholders and bad rows, all-or-nothing
charging, pause / resume / stop with exact counts and refunds, restarts while paused
and while running, fairness for single messages, scheduled starts, isolation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import call, wait_for
from tests.support.peer import record_submit_times
from tests.support.polling import until
from tests.support.running import TOKEN_B


def _numbers(count: int, start: int = 0) -> list[str]:
    return [f"+4850{start + i:07d}" for i in range(count)]


def _job(client: Any, recipients: list[Any], text: str = "Hi {name}", **extra: Any) -> Any:
    status, body = client.request("POST", "/v1/jobs", {"name": "campaign", "from": "Acme",
                                                       "text": text, "recipients": recipients,
                                                       **extra})
    return status, body


def _get(client: Any, job_id: str) -> dict[str, Any]:
    status, body = client.request("GET", f"/v1/jobs/{job_id}")
    assert status == 200, body
    return body


def _wait_state(client: Any, job_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> Any:
        seen.update(_get(client, job_id))
        return dict(seen) if seen["state"] == state else None

    return until(reached, timeout, f"job {job_id} to be {state}", interval=0.05,
                 detail=lambda: f"it is {seen.get('state')}: {seen}")


def _until(predicate: Any, what: str, timeout: float = 20) -> None:
    """Poll from the test thread (HTTP calls cannot run on the reactor thread the way
    wait_for runs its predicate)."""
    until(predicate, timeout, what, interval=0.05)


def _sent_texts(smsc: Any) -> list[str | None]:
    return [message.text for message in list(smsc.messages)]


def test_job_with_placeholders_and_bad_rows_completes(start_daemon: Any) -> None:
    running = start_daemon()
    recipients = [{"to": "+48500000001", "name": "Ann"}, "+48500000002",
                  {"to": "+4850000", "name": "Bad"}, {"to": "+48500000003", "name": "Ed"},
                  {"name": "No number"}, 42]
    status, body = _job(running.client, recipients, text="Hi {name}, {{code}}")
    assert status == 201, body
    assert body["messages"] == 2 and body["rejected_rows"] == 4
    assert [(e["row"], e["field"]) for e in body["row_errors"]] == [
        (2, "name"), (3, "to"), (5, "to"), (6, "to")]
    job = _wait_state(running.client, body["id"], "completed")
    assert job["counts"] == {"delivered": 2}
    assert sorted(_sent_texts(running.smsc)) == ["Hi Ann, {code}", "Hi Ed, {code}"]
    _, page = running.client.request("GET", f"/v1/messages?job={body['id']}")
    assert len(page["messages"]) == 2


def test_bad_job_bodies_name_the_field(start_daemon: Any) -> None:
    running = start_daemon()
    cases = [({"from": "Acme", "text": "x", "recipients": ["+48500000001"]}, "name"),
             ({"name": "n", "from": "Shop@1", "text": "x", "recipients": ["+48500000001"]},
              "from"),
             ({"name": "n", "from": "Acme", "text": "x {", "recipients": ["+48500000001"]},
              "text"),
             ({"name": "n", "from": "Acme", "text": "x", "recipients": []}, "recipients"),
             ({"name": "n", "from": "Acme", "text": "x", "recipients": ["+4850"]},
              "recipients"),
             ({"name": "n", "from": "Acme", "text": "x", "recipients": ["+48500000001"],
               "throughput": -1}, "throughput"),
             ({"name": "n", "from": "Acme", "text": "x", "recipients": ["+48500000001"],
               "start_at": "tomorrow"}, "start_at")]
    for body, field in cases:
        status, answer = running.client.request("POST", "/v1/jobs", body)
        assert (status, answer.get("field")) == (400, field), (body, answer)
    assert running.smsc.submits == []


def _assert_refused_and_nothing_created(client: Any, status: int, body: Any) -> None:
    assert (status, body["field"]) == (402, "balance")
    _, account = client.request("GET", "/v1/account")
    assert account["balance"] == 100  # every batch already charged came back
    _, page = client.request("GET", "/v1/messages")
    assert page["messages"] == []


def test_insufficient_balance_creates_nothing(start_daemon: Any) -> None:
    running = start_daemon()
    other = running.other_client(TOKEN_B)  # balance 100
    status, body = _job(other, _numbers(150), text="hello")
    _assert_refused_and_nothing_created(other, status, body)
    other.close()


def test_pause_resume_stop_with_exact_counts_and_refunds(start_daemon: Any) -> None:
    running = start_daemon()
    client, smsc = running.client, running.smsc
    _, before = client.request("GET", "/v1/account")
    status, job = _job(client, _numbers(100), text="paced", throughput=40)
    assert status == 201
    wait_for(lambda: len(smsc.submits) >= 10, what="the job under way")
    assert client.request("POST", f"/v1/jobs/{job['id']}/pause")[1]["state"] == "paused"
    assert client.request("POST", f"/v1/jobs/{job['id']}/pause")[1]["state"] == "paused"
    _until(lambda: _get(client, job["id"])["counts"].get("submitted", 0) == 0,
           "in-flight messages settled")
    paused_at = len(smsc.submits)
    time.sleep(0.5)
    assert len(smsc.submits) == paused_at  # nothing new while paused
    assert client.request("POST", f"/v1/jobs/{job['id']}/resume")[1]["state"] == "running"
    wait_for(lambda: len(smsc.submits) >= paused_at + 10, what="sending again")
    status, stopped = client.request("POST", f"/v1/jobs/{job['id']}/stop")
    assert status == 200 and stopped["state"] == "stopped"
    final = _wait_state(client, job["id"], "stopped")
    _until(lambda: _get(client, job["id"])["counts"].get("submitted", 0) == 0,
           "the last in-flight receipts")
    final = _get(client, job["id"])
    sent = len(set(r.pdu.fields["destination_addr"] for r in smsc.submits))
    assert final["counts"] == {"delivered": sent, "cancelled": 100 - sent}
    assert stopped["cancelled"] == 100 - sent and stopped["refunded"] == 100 - sent
    assert final["refunded"] == 100 - sent
    _, after = client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == sent  # charged exactly what went out
    again = client.request("POST", f"/v1/jobs/{job['id']}/stop")[1]
    assert (again["cancelled"], again["refunded"]) == (0, 0)
    assert client.request("POST", f"/v1/jobs/{job['id']}/resume")[1]["state"] == "stopped"


def test_a_paused_job_stays_paused_across_a_restart(start_daemon: Any) -> None:
    running = start_daemon()
    client, smsc = running.client, running.smsc
    _, job = _job(client, _numbers(60), text="restart paused", throughput=40)
    wait_for(lambda: len(smsc.submits) >= 5, what="the job under way")
    client.request("POST", f"/v1/jobs/{job['id']}/pause")
    _until(lambda: _get(client, job["id"])["counts"].get("submitted", 0) == 0,
           "in-flight settled")
    sent = len(smsc.submits)
    client.close()
    call(running.daemon.stop)
    restarted = start_daemon()
    assert _get(restarted.client, job["id"])["state"] == "paused"
    time.sleep(0.5)
    assert len(smsc.submits) == sent
    restarted.client.request("POST", f"/v1/jobs/{job['id']}/resume")
    final = _wait_state(restarted.client, job["id"], "completed")
    assert final["counts"] == {"delivered": 60}
    assert len(smsc.submits) == 60  # each message once


def test_a_running_job_resumes_after_a_restart(start_daemon: Any) -> None:
    running = start_daemon()
    client, smsc = running.client, running.smsc
    _, job = _job(client, _numbers(80), text="restart running", throughput=50)
    wait_for(lambda: len(smsc.submits) >= 10, what="the job under way")
    client.close()
    call(running.daemon.stop)  # SIGTERM-like: drains what is in flight
    restarted = start_daemon()
    final = _wait_state(restarted.client, job["id"], "completed")
    assert final["counts"] == {"delivered": 80}
    destinations = [r.pdu.fields["destination_addr"] for r in smsc.submits]
    assert len(destinations) == len(set(destinations)) == 80


def test_a_single_message_does_not_wait_behind_a_job(start_daemon: Any) -> None:
    """Fairness: the SMSC allows 50 submits/s; a 300-message job is running; a
    single API message is sent within the next few submits, not after the job."""
    running = start_daemon(smsc={"throughput": 50})
    client, smsc = running.client, running.smsc
    _, job = _job(client, _numbers(300), text="bulk")
    wait_for(lambda: len(smsc.submits) >= 20, what="the job under way")
    _, single = client.send(to="+48600000001", text="urgent")
    accepted_at = len(smsc.submits)
    client.wait_status(single["id"], "delivered", timeout=20)
    position = _sent_texts(smsc).index("urgent")
    # Within the release already under way (one a second: up to 50 submits handed
    # to the session before the single message came), never behind the job's ~280.
    assert position - accepted_at <= 50, (position, accepted_at)
    assert _get(client, job["id"])["counts"].get("queued", 0) > 100  # the job was not done


def test_a_scheduled_job_waits_for_its_start(start_daemon: Any) -> None:
    """Nothing reaches the SMSC before `start_at` (each submit is timed where it
    arrives, on the same clock as the daemon's), and all of it after."""
    running = start_daemon()
    client, smsc = running.client, running.smsc
    arrived = record_submit_times(smsc)
    start = datetime.now(UTC) + timedelta(seconds=1.5)
    _, job = _job(client, _numbers(5), text="later", start_at=start.isoformat())
    assert job["state"] == "scheduled"
    final = _wait_state(client, job["id"], "completed")
    assert final["counts"] == {"delivered": 5}
    assert len(arrived) == 5
    assert min(arrived) >= start.timestamp(), \
        f"the first submit came {start.timestamp() - min(arrived):.3f} s before start_at"


def test_jobs_are_per_account(start_daemon: Any) -> None:
    running = start_daemon()
    client, smsc = running.client, running.smsc
    _, job = _job(client, _numbers(30), text="mine", throughput=40)
    other = running.other_client(TOKEN_B)
    assert other.request("GET", f"/v1/jobs/{job['id']}")[0] == 404
    assert other.request("POST", f"/v1/jobs/{job['id']}/stop")[0] == 404
    assert other.request("POST", f"/v1/jobs/{job['id']}/pause")[0] == 404
    other.close()
    final = _wait_state(client, job["id"], "completed")
    assert final["counts"] == {"delivered": 30} and len(smsc.submits) == 30


def _multipart(fields: dict[str, str], csv_text: bytes) -> tuple[bytes, str]:
    boundary = "smppd-test-boundary"
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      f"{value}\r\n".encode())
    chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                  f'filename="r.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                  + csv_text + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _upload(client: Any, fields: dict[str, str], csv_text: bytes) -> tuple[int, Any]:
    import json as json_module

    body, content_type = _multipart(fields, csv_text)
    client.conn.request("POST", "/v1/jobs", body=body, headers={
        "Authorization": f"Bearer {client.token}", "Content-Type": content_type})
    response = client.conn.getresponse()
    return response.status, json_module.loads(response.read())


def test_csv_upload_with_bad_rows(start_daemon: Any) -> None:
    running = start_daemon()
    csv_text = (b"to,name\r\n+48500000011,Ann\r\n+4850,Short\r\n+48500000012,\"Bo, Jr\"\r\n"
                b",Nobody\r\n+48500000013,Cy\r\n") + b"+48500000014,\xff\xfe\r\n"
    status, job = _upload(running.client, {"name": "csv", "from": "Acme",
                                           "text": "Dear {name}", "throughput": "50"},
                          csv_text)
    assert status == 201, job
    assert job["messages"] == 3
    assert [(e["row"], e["field"]) for e in job["row_errors"]] == [(3, "to"), (5, "to"),
                                                                    (7, "to")]
    final = _wait_state(running.client, job["id"], "completed")
    assert final["counts"] == {"delivered": 3}
    cap = final["throughput"]  # the form field reached the job as a number
    assert cap == 50
    assert sorted(_sent_texts(running.smsc)) == ["Dear Ann", "Dear Bo, Jr", "Dear Cy"]


def test_csv_without_a_to_column_is_refused(start_daemon: Any) -> None:
    running = start_daemon()
    status, answer = _upload(running.client, {"name": "csv", "from": "Acme", "text": "x"},
                             b"number,name\r\n+48500000011,Ann\r\n")
    assert (status, answer["field"]) == (400, "file")


def test_a_job_short_of_points_in_a_later_batch_is_taken_back_whole(
        start_daemon: Any, monkeypatch: Any) -> None:
    from smppd.daemon import jobs

    monkeypatch.setattr(jobs, "JOB_BATCH", 30)
    running = start_daemon()
    other = running.other_client(TOKEN_B)  # balance 100: the first three batches fit
    status, body = _job(other, _numbers(130), text="hello")
    _assert_refused_and_nothing_created(other, status, body)
    assert running.smsc.submits == []
    other.close()


def test_a_job_left_half_created_by_a_crash_is_removed_at_start(start_daemon: Any) -> None:
    from smppd.ids import new_id
    from smppd.store import operations as ops

    running = start_daemon()
    account = running.daemon.accounts["acme"]
    _, before = running.client.request("GET", "/v1/account")
    job_id = new_id()
    messages = [ops.Accept(account.id, new_id(), "Acme", f"4850000{i:04d}", "PL", "x", "gsm",
                           1, 1, 0, None, None, None, time.time(), job_id) for i in range(5)]
    call(running.daemon.writer.put, ops.CreateJob(account.id, job_id, "half", "Acme", "x",
                                                  None, None, messages, time.time()))
    running.client.close()
    call(running.daemon.stop)  # as if smppd died before FinishJob
    restarted = start_daemon()
    assert restarted.client.request("GET", f"/v1/jobs/{job_id}")[0] == 404
    _, after = restarted.client.request("GET", "/v1/account")
    assert after["balance"] == before["balance"]
    assert restarted.smsc.submits == []


def test_a_job_through_a_throttling_smsc_loses_nothing(start_daemon: Any) -> None:
    """Every 3rd submit ESME_RTHROTTLED: the bind slows down, the refused submits are
    retried, every message is delivered once and charged once."""
    running = start_daemon()
    client, smsc = running.client, running.smsc
    smsc.behaviour.throttle_every = 3
    _, before = client.request("GET", "/v1/account")
    _, job = _job(client, _numbers(30), text="throttled")
    final = _wait_state(client, job["id"], "completed", timeout=60)
    assert final["counts"] == {"delivered": 30}
    delivered = [r.pdu.fields["destination_addr"] for r in smsc.submits if r.status == 0]
    assert len(delivered) == len(set(delivered)) == 30
    _, after = client.request("GET", "/v1/account")
    assert before["balance"] - after["balance"] == 30
    _, metrics = client.request("GET", "/metrics")
    assert 'smppd_throttled_total{smsc="carrier-a"}' in metrics


def test_a_scheduled_job_paused_before_its_start_starts_on_resume(start_daemon: Any) -> None:
    running = start_daemon()
    client = running.client
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, job = _job(client, _numbers(30), text="early", start_at=start, throughput=20)
    assert client.request("POST", f"/v1/jobs/{job['id']}/pause")[1]["state"] == "paused"
    assert client.request("POST", f"/v1/jobs/{job['id']}/resume")[1]["state"] == "running"
    feeders = running.daemon.dispatcher.feeders
    feeder = wait_for(lambda: feeders.get(job["id"]), what="the job fed")
    assert feeder.cap is not None and feeder.cap.rate == 20  # its cap kept
    final = _wait_state(client, job["id"], "completed")
    assert final["counts"] == {"delivered": 30}
