"""What the daemon does with each connector event: outcomes go to the dispatcher,
receipts and MO messages to the store, and deliver_sm is answered only once that
write is committed (checklist 25, 32).

Every handler is guarded: an exception here is smppd's own bug, and it must not
become a dropped SMPP connection (Twisted drops the connection whose dataReceived
raised). The guard logs it; a deliver_sm then gets ESME_RX_T_APPN, so the SMSC
redelivers it after the bug is fixed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from ..logs import mask_number
from ..protocol import receipts
from ..protocol.connector import ConnectorListener, Link
from ..protocol.constants import ESME_ROK, ESME_RX_T_APPN
from ..protocol.inbound import MoFragment, MoMessage, Reassembler, UdhError, fragment_from_pdu
from ..protocol.message_id import AutoIds, IdPolicy, Reading
from ..protocol.session import DeliverReceived, LateResponse, SubmitResult, SubmitUnknown
from ..store import operations as ops
from .dispatcher import Dispatcher
from .metrics import Metrics

log = logging.getLogger("smppd.listener")
EXPIRY_INTERVAL = 60.0  # how often a part waiting for the rest of its MO is looked at


def _guarded(default: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def guarded(self: DaemonListener, link: Link, *args: Any) -> Any:
            try:
                return handler(self, link, *args)
            except Exception:
                log.exception("smsc=%s %s failed (a bug in smppd)", link.name,
                              handler.__name__)
                return default
        return guarded
    return wrap


def dedupe_key(smsc: str, fragment: MoFragment) -> str:
    """Same SMSC, addresses, concatenation and content: a redelivery of one part."""
    concat = fragment.concat
    head = f"{smsc}|{fragment.source}|{fragment.destination}|{fragment.data_coding}|"
    if concat is not None:
        head += f"{concat.reference}/{concat.total}/{concat.number}"
    return hashlib.sha256(head.encode() + b"|" + fragment.payload).hexdigest()[:40]


class DaemonListener(ConnectorListener):
    def __init__(self, dispatcher: Dispatcher, put: Callable[[Any], defer.Deferred[Any]],
                 metrics: Metrics, reactor: Any, reassembly_timeout: float = 600.0) -> None:
        self.dispatcher = dispatcher
        self.put = put
        self.metrics = metrics
        self.reactor = reactor
        self.reassembler = Reassembler(reassembly_timeout)
        # Runs only while the reassembler holds something (issue 13: an idle daemon
        # woke once a minute to expire nothing).
        self._expiry = task.LoopingCall(self.expire)
        self._expiry.clock = reactor
        self._expiry_stopped = False
        self._fragment_ids: dict[tuple[str, str, int, int], list[int]] = {}
        self._fragment_keys: dict[tuple[str, str, int, int], list[str]] = {}
        # Told of every MO stored (replies to queue, forwards to wake): smppd.inbound.
        self.on_inbound: Callable[[Any], None] | None = None
        self._inbound_counters: dict[str, Any] = {}  # smsc -> its child of metrics.inbound

    @_guarded()
    def bound(self, link: Link) -> None:
        self.dispatcher.pump()

    @_guarded()
    def submit_result(self, link: Link, event: SubmitResult) -> None:
        self.dispatcher.submit_result(event)

    @_guarded()
    def submit_unknown(self, link: Link, event: SubmitUnknown) -> None:
        self.dispatcher.submit_unknown(event)

    @_guarded()
    def late_response(self, link: Link, event: LateResponse) -> None:
        self.dispatcher.late_response(event.token, event.status, event.message_id)

    @_guarded(default=ESME_RX_T_APPN)
    def deliver(self, link: Link, event: DeliverReceived) -> int | defer.Deferred[int]:
        smsc = link.connector.name
        if receipts.is_receipt(event.pdu):
            return self._receipt(smsc, event)
        return self._inbound(smsc, link, event)

    def _receipt(self, smsc: str, event: DeliverReceived) -> int | defer.Deferred[int]:
        try:
            receipt = receipts.parse(event.pdu)
        except receipts.ReceiptError as exc:
            # Acked: redelivering garbage would only bring the same garbage back.
            log.warning("smsc=%s unparsable receipt (acked): %s", smsc, exc)
            self.metrics.receipts_unparsable.labels(smsc).inc()
            return ESME_ROK
        channel = self.dispatcher.channels.get(smsc)
        self.metrics.receipt(smsc, receipt.status)
        # "err:000" is the absence of an error, not an error code worth showing.
        error = receipt.error if receipt.error and receipt.error.strip("0") else None
        ids = channel.ids if channel is not None else IdPolicy()
        if not isinstance(ids, AutoIds):
            op = ops.ReceiptSeen(smsc, ids.from_receipt(receipt.message_id), receipt.status,
                                 error)
            return self.put(op).addCallback(lambda _: ESME_ROK)
        found = ids.receipt(receipt.tlv_id, lambda: receipt.text_id)
        if found is None:
            log.warning("smsc=%s receipt with an empty id (acked)", smsc)
            self.metrics.receipts_unparsable.labels(smsc).inc()
            return ESME_ROK
        op = ops.ReceiptSeen(smsc, found.key, receipt.status, error, found.source,
                             found.raw, found.candidates)
        self._report_learnt(smsc, ids)

        def stored(observed: str | None) -> int:
            if observed is not None:  # one reading named a message in progress
                ids.observe(found.source, Reading(observed))
                self._report_learnt(smsc, ids)
            return ESME_ROK

        return self.put(op).addCallback(stored)

    def _report_learnt(self, smsc: str, ids: AutoIds) -> None:
        for origin, reading in ids.take_learnt():  # origin: the TLV or the text
            log.info("smsc=%s receipt ids learnt: the %s id reads %s (id_format: auto)",
                     smsc, origin.value, reading.value)
            self.put(ops.LearnIdMode(smsc, origin.value, reading.value)).addErrback(
                lambda failure: log.error("smsc=%s learnt id reading not stored: %s", smsc,
                                          failure.getErrorMessage()))

    def _inbound(self, smsc: str, link: Link,
                 event: DeliverReceived) -> int | defer.Deferred[int]:
        """The part is offered to the reassembler at once. A part that does not
        complete its message is kept (FragmentSeen) and then answered. The part that
        completes one is kept together with the whole message, its routing and all
        that follows from it (InboundComplete, one transaction), and only then
        answered: routing happens before the ack. A part whose write fails is taken
        back from the reassembler, since its deliver_sm asks for a redelivery."""
        try:
            fragment = fragment_from_pdu(event.pdu)
        except UdhError as exc:
            log.warning("smsc=%s MO with a malformed UDH kept whole: %s", smsc, exc)
            fields = event.pdu.fields
            fragment = MoFragment(fields.get("source_addr", ""),
                                  fields.get("destination_addr", ""),
                                  fields.get("data_coding", 0),
                                  fields.get("short_message") or b"", None,
                                  list(event.pdu.unknown_tlvs))
        concat = fragment.concat
        tlvs = _tlvs(fragment.unknown_tlvs)
        op = ops.FragmentSeen(smsc, fragment.source, fragment.destination,
                              fragment.data_coding, concat.reference if concat else None,
                              concat.total if concat else None, concat.number if concat else None,
                              fragment.payload, tlvs, dedupe_key(smsc, fragment))
        group = _group_key(fragment)
        now = self.reactor.seconds()
        duplicates = self.reassembler.duplicates
        message = self.reassembler.add(fragment, now)
        self._expire_later()
        added = self.reassembler.duplicates == duplicates
        if added:
            self._fragment_keys.setdefault(group, []).append(op.dedupe_key)

        def take_back(failure: Any) -> Any:
            if added:
                self.reassembler.withdraw(fragment)
                keys = self._fragment_keys.get(group)
                if keys is not None and op.dedupe_key in keys:
                    keys.remove(op.dedupe_key)
            return failure

        def redelivered() -> int:
            self.metrics.inbound_duplicates.labels(smsc).inc()
            log.info("smsc=%s redelivered MO from %s dropped", smsc,
                     mask_number(fragment.source))
            return ESME_ROK

        if message is None:
            return self.put(op).addCallbacks(
                lambda row_id: redelivered() if row_id is None else ESME_ROK, take_back)
        keys = self._fragment_keys.pop(group, [op.dedupe_key])
        ids = self._fragment_ids.pop(group, [])

        def reopen(failure: Any) -> Any:
            self.reassembler.withdraw(fragment)
            self._fragment_keys[group] = [k for k in keys if k != op.dedupe_key]
            if ids:
                self._fragment_ids[group] = ids
            return failure

        def stored(result: Any) -> int:
            if result is None:
                return redelivered()
            self._stored(smsc, message, result)
            return ESME_ROK

        return self.put(self._complete(smsc, message, ids, keys, now, op)).addCallbacks(
            stored, reopen)

    def expire(self) -> None:
        """Give up on MO messages whose parts stopped coming (reassembly timeout)."""
        for key, parts in self.reassembler.expire(self.reactor.seconds()):
            self._fragment_ids.pop(key, None)
            self._fragment_keys.pop(key, None)
            self.metrics.inbound_expired.inc()
            log.warning("MO from %s to %s (reference %d) expired with parts %s of %d",
                        mask_number(key[0]), mask_number(key[1]), key[2], parts, key[3])
        if self._expiry.running and self.reassembler.idle():
            self._expiry.stop()

    def _expire_later(self) -> None:
        """After the reassembler took a part: look for expired ones every minute until
        it holds nothing."""
        if not (self._expiry_stopped or self._expiry.running or self.reassembler.idle()):
            self._expiry.start(EXPIRY_INTERVAL, now=False)

    def stop_expiry(self) -> None:
        """At shutdown: no more expiry, and none started by a late part."""
        self._expiry_stopped = True
        if self._expiry.running:
            self._expiry.stop()

    def add_fragment(self, smsc: str, fragment: MoFragment, row_id: int,
                     key: str | None = None, received_at: float | None = None) -> None:
        """Feed the reassembler with a part already kept (at start: MO parts left
        unassembled by the last run). A message it completes is stored afterwards;
        a crash before that reloads the parts again, and a message stored once is not
        stored twice (InboundComplete checks its fragments)."""
        group = _group_key(fragment)
        self._fragment_ids.setdefault(group, []).append(row_id)
        if key is not None:
            self._fragment_keys.setdefault(group, []).append(key)
        # A part reloaded at start keeps the time it came: a vote is judged by it.
        now = self.reactor.seconds() if received_at is None else received_at
        message = self.reassembler.add(fragment, now)
        self._expire_later()
        if message is None:
            return
        fragment_ids = self._fragment_ids.pop(group, [row_id])
        keys = self._fragment_keys.pop(group, [])

        def stored(result: Any) -> None:
            if result is not None:
                self._stored(smsc, message, result)

        self.put(self._complete(smsc, message, fragment_ids, keys, now)).addCallbacks(
            stored, lambda failure: log.error("smsc=%s MO not stored: %s", smsc,
                                              failure.getErrorMessage()))

    def _complete(self, smsc: str, message: MoMessage, fragment_ids: list[int],
                  keys: list[str], now: float,
                  fragment: ops.FragmentSeen | None = None) -> ops.InboundComplete:
        return ops.InboundComplete(smsc, message.source, message.destination,
                                   message.data_coding, message.text, message.payload,
                                   message.parts, _tlvs(message.unknown_tlvs),
                                   tuple(fragment_ids), fragment, tuple(keys), now)

    def _stored(self, smsc: str, message: MoMessage, result: Any) -> None:
        counter = self._inbound_counters.get(smsc)
        if counter is None:  # labels() costs more than the increment: once per SMSC
            counter = self._inbound_counters[smsc] = self.metrics.inbound.labels(smsc)
        counter.inc()
        if log.isEnabledFor(logging.INFO):  # masking both numbers is not free: only if shown
            log.info("smsc=%s MO from %s to %s (%d part(s)) kept", smsc,
                     mask_number(message.source), mask_number(message.destination),
                     message.parts)
        if self.on_inbound is not None:
            self.on_inbound(result)


def _group_key(fragment: MoFragment) -> tuple[str, str, int, int]:
    concat = fragment.concat
    return (fragment.source, fragment.destination, concat.reference if concat else 0,
            concat.total if concat else 1)


def _tlvs(unknown: list[tuple[int, bytes]]) -> str | None:
    return json.dumps([[tag, value.hex()] for tag, value in unknown]) if unknown else None
