"""A scriptable SMSC on Twisted, for tests, benchmarks and `smppd fake-smsc`.

It accepts binds, answers submit_sm with an id and (when registered_delivery asks)
a receipt, and can be told to misbehave the ways real SMSCs do: throttle, fill its
queue, nack, swallow or reorder responses, send receipts before responses, drop or
unbind the connection, stop answering enquire_link. It records what it received,
reassembled and decoded, so tests assert on what the SMSC saw.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor as default_reactor
from twisted.internet.protocol import Factory, Protocol

from smppd.protocol import constants as c
from smppd.protocol import pdu as codec
from smppd.protocol import receipts
from smppd.protocol.framing import Framer, FramingError
from smppd.protocol.inbound import Reassembler, fragment_from_pdu
from smppd.protocol.pdu import Pdu, PduDecodeError
from smppd.protocol.segmentation import SplitMode, SplitPolicy, split
from smppd.protocol.text import CharsetProfile, Encoding

log = logging.getLogger("smppd.fake_smsc")


TEMPORARY_MO_ERRORS = frozenset({c.ESME_RX_T_APPN, c.ESME_RMSGQFUL, c.ESME_RTHROTTLED})


@dataclass
class Behaviour:
    """What the SMSC does. Tests change fields at any time; one-shot faults reset."""

    credentials: dict[str, str] | None = None  # system_id -> password; None accepts any
    system_type: str | None = None  # required system_type, if set
    bind_status: int | None = None  # answer every bind with this status
    id_format: str = "dec"  # dec | hex | hexpad | hexlower | uuid | big (20 digits)
    receipt_id_format: str | None = None  # id format in receipts; None = as id_format
    receipts: bool = True
    receipt_delay: float = 0.0
    receipt_before_response: float | None = None  # seconds the resp waits after the receipt
    receipt_status_by_prefix: dict[str, str] = field(default_factory=dict)  # else DELIVRD
    receipt_tlvs: bool = True  # receipted_message_id + message_state TLVs
    # Receipts to the receiving binds of the system_id in turn, not to the bind that
    # submitted (real SMSCs deliver to any receiver of the account: with several
    # ESME instances, a receipt often reaches another instance than the sender).
    receipts_round_robin: bool = False
    receipt_tlv_state: str | None = None  # force a TLV state that disagrees with the text
    intermediate_receipts: bool = False  # send ENROUTE before the final receipt
    submit_status_by_prefix: dict[str, int] = field(default_factory=dict)
    response_delay: float = 0.0
    respond_in_reverse: int = 0  # hold this many responses, then answer newest first
    throttle_rate: float | None = None  # submits/s beyond which ESME_RTHROTTLED
    throttle_every: int = 0  # every Nth submit answered ESME_RTHROTTLED
    max_pending: int | None = None  # unanswered submits beyond which ESME_RMSGQFUL
    nack_every: int = 0  # every Nth submit answered generic_nack(nack_status)
    nack_status: int = c.ESME_RINVCMDID
    swallow: set[int] = field(default_factory=set)  # submit ordinals never answered
    drop_after_pdus: int | None = None  # one-shot: close after receiving this many PDUs
    # Every connection: on its Nth submit, close without answering it; what the ESME
    # sent after it in the same read is never processed (it sat in the receive buffer).
    drop_every: int = 0
    unbind_after_pdus: int | None = None  # one-shot: send unbind after this many PDUs
    answer_enquire_link: bool = True
    # A deliver_sm answered with a temporary error (ESME_RX_T_APPN, ESME_RMSGQFUL,
    # ESME_RTHROTTLED) is sent again this many seconds later, as a real SMSC retries
    # an MO; None leaves it answered (tests that check the refusal itself).
    redeliver_after: float | None = None
    # A deliver_sm still unanswered when its connection is lost is kept and sent again
    # on the next receiving bind, as a real SMSC keeps a receipt until it is
    # acknowledged (the kill -9 tests: an ESME killed between committing a part's
    # submit_sm_resp and its receipt gets the receipt again after its restart).
    keep_unanswered: bool = False
    charset: CharsetProfile = field(default_factory=CharsetProfile)


@dataclass
class SubmitRecord:
    pdu: Pdu
    message_id: str | None
    status: int
    system_id: str
    at: float = 0.0  # the reactor's clock when it arrived (per-second counts)
    connection: int = 0  # which connection (its index in order of connecting)


@dataclass
class AssembledMessage:
    source: str
    destination: str
    text: str | None
    parts: int


class SmscProtocol(Protocol):
    def __init__(self, smsc: FakeSmsc) -> None:
        self.smsc = smsc
        self.framer = Framer()
        self.bound_as: str | None = None  # bind command
        self.system_id = ""
        self.pdus_received = 0
        self.submits_received = 0  # on this connection
        self.pending_responses = 0
        self.held: list[Pdu] = []
        self.serial = 0  # set when connected: SubmitRecord.connection
        self.sent_delivers: dict[int, Pdu] = {}  # awaiting an answer (redeliver_after)
        self._sequence = itertools.count(1)
        self.open = False

    @property
    def can_receive(self) -> bool:
        return self.bound_as in ("bind_transceiver", "bind_receiver")

    def connectionMade(self) -> None:
        self.open = True
        self.serial = next(self.smsc._serials)
        self.smsc.connections.append(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.open = False
        if self in self.smsc.connections:
            self.smsc.connections.remove(self)
        if self.smsc.behaviour.keep_unanswered:
            unanswered, self.sent_delivers = self.sent_delivers, {}
            for pdu in unanswered.values():
                self.smsc.kept_unanswered += 1
                self.smsc.deliver(dict(pdu.fields), list(pdu.unknown_tlvs),
                                  system_id=self.system_id, command=pdu.command)

    def next_sequence(self) -> int:
        return next(self._sequence)

    def send(self, pdu: Pdu) -> None:
        if self.open and self.transport is not None:
            self.transport.write(codec.encode(pdu))

    def send_raw(self, data: bytes) -> None:
        if self.open and self.transport is not None:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            self.send(Pdu("generic_nack", exc.sequence, c.ESME_RINVCMDLEN))
            self.transport.loseConnection()
            return
        for frame in frames:
            if not self.open:
                return
            self.frame_received(frame)

    def frame_received(self, frame: bytes) -> None:
        smsc = self.smsc
        behaviour = smsc.behaviour
        self.pdus_received += 1
        try:
            pdu = codec.decode(frame)
        except PduDecodeError as exc:
            smsc.undecodable.append(frame)
            self.send(Pdu("generic_nack", exc.sequence, exc.status))
            return
        smsc.received.append(pdu)
        if behaviour.drop_after_pdus is not None and self.pdus_received >= \
                behaviour.drop_after_pdus:
            behaviour.drop_after_pdus = None
            self.transport.loseConnection()
            return
        handler = getattr(self, "on_" + pdu.command, None)
        if handler is not None:
            handler(pdu)
        elif not pdu.is_response:
            self.send(Pdu("generic_nack", pdu.sequence, c.ESME_RINVCMDID))
        if behaviour.unbind_after_pdus is not None and self.pdus_received >= \
                behaviour.unbind_after_pdus:
            behaviour.unbind_after_pdus = None
            self.send(Pdu("unbind", self.next_sequence()))

    # Requests from the ESME -------------------------------------------------------

    def _bind(self, pdu: Pdu) -> None:
        behaviour = self.smsc.behaviour
        system_id = pdu.get("system_id", "")
        status = c.ESME_ROK
        if self.bound_as is not None:
            status = c.ESME_RALYBND
        elif behaviour.bind_status is not None:
            status = behaviour.bind_status
        elif behaviour.credentials is not None:
            if system_id not in behaviour.credentials:
                status = c.ESME_RINVSYSID
            elif behaviour.credentials[system_id] != pdu.get("password", ""):
                status = c.ESME_RINVPASWD
        if status == c.ESME_ROK and behaviour.system_type is not None and \
                pdu.get("system_type", "") != behaviour.system_type:
            status = c.ESME_RINVSYSTYP
        self.smsc.binds.append((pdu.command, system_id, status))
        self.send(Pdu(pdu.command + "_resp", pdu.sequence, status,
                      {"system_id": "fakesmsc"} if status == 0 else {}))
        if status == c.ESME_ROK:
            self.bound_as = pdu.command
            self.system_id = system_id
            if self.can_receive:
                self.smsc.flush_stored(self)

    on_bind_transceiver = on_bind_transmitter = on_bind_receiver = _bind

    def on_enquire_link(self, pdu: Pdu) -> None:
        self.smsc.enquire_links_received += 1
        if self.smsc.behaviour.answer_enquire_link:
            self.send(codec.response_to(pdu))

    def on_unbind(self, pdu: Pdu) -> None:
        self.send(codec.response_to(pdu))
        self.bound_as = None
        self.transport.loseConnection()

    def on_unbind_resp(self, pdu: Pdu) -> None:
        self.bound_as = None
        self.transport.loseConnection()

    def on_deliver_sm_resp(self, pdu: Pdu) -> None:
        self.smsc.deliver_responses[pdu.sequence] = pdu.status
        sent = self.sent_delivers.pop(pdu.sequence, None)
        delay = self.smsc.behaviour.redeliver_after
        if sent is not None and delay is not None and pdu.status in TEMPORARY_MO_ERRORS:
            self.smsc.redelivered += 1
            self.smsc.reactor.callLater(delay, self.smsc.resend_deliver, sent)

    on_data_sm_resp = on_deliver_sm_resp

    def on_generic_nack(self, pdu: Pdu) -> None:
        self.smsc.nacks_received.append(pdu)

    def on_submit_sm(self, pdu: Pdu) -> None:
        if self.bound_as not in ("bind_transceiver", "bind_transmitter"):
            self.send(codec.response_to(pdu, c.ESME_RINVBNDSTS))
            return
        self.submits_received += 1
        every = self.smsc.behaviour.drop_every
        if every and self.submits_received % every == 0:
            # Processed (it reaches the SMSC's records, so a resend is a duplicate),
            # never answered, and the connection goes with the rest of the buffer.
            self.smsc.submits.append(SubmitRecord(pdu, None, -1, self.system_id))
            self.smsc.drops += 1
            self.open = False
            self.transport.loseConnection()  # the answers already written still go
            return
        self.smsc.handle_submit(self, pdu)

    on_data_sm = on_submit_sm


class FakeSmsc(Factory):
    """The SMSC: listening ports, shared behaviour and records."""

    def __init__(self, behaviour: Behaviour | None = None, reactor: Any = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.reactor = reactor or default_reactor
        self.connections: list[SmscProtocol] = []
        self.received: list[Pdu] = []
        self.undecodable: list[bytes] = []
        self.submits: list[SubmitRecord] = []
        self.binds: list[tuple[str, str, int]] = []
        self.nacks_received: list[Pdu] = []
        self.deliver_responses: dict[int, int] = {}
        self.redelivered = 0  # MO sent again after a temporary error (redeliver_after)
        self.kept_unanswered = 0  # deliver_sm kept from a lost connection (keep_unanswered)
        self.receipts_sent = 0
        self.drops = 0  # connections closed by `drop_every`
        self.enquire_links_received = 0
        self.messages: list[AssembledMessage] = []
        self._reassembler = Reassembler(timeout=600.0)
        self._ids = itertools.count(0xB8BE19)
        self._next_ids: list[int] = []
        self._stored: list[tuple[str, Pdu]] = []  # receipts waiting for a receiver bind
        self._bucket_tokens = 0.0
        self._bucket_time = 0.0
        self._turn = 0  # receipts_round_robin: the receiver that got the last one
        self._serials = itertools.count(1)

    def buildProtocol(self, addr: Any) -> SmscProtocol:
        return SmscProtocol(self)

    def listen(self, port: int = 0, interface: str = "127.0.0.1",
               tls_context: Any = None) -> Any:
        if tls_context is not None:
            return self.reactor.listenSSL(port, self, tls_context, interface=interface)
        return self.reactor.listenTCP(port, self, interface=interface)

    # Submit handling --------------------------------------------------------------

    def _new_id(self) -> tuple[str, int]:
        number = self._next_ids.pop(0) if self._next_ids else next(self._ids)
        return self._format_id(number, self.behaviour.id_format), number

    def use_ids(self, numbers: list[int]) -> None:
        """The next submits get these message ids (in the configured format)."""
        self._next_ids.extend(numbers)

    @staticmethod
    def _format_id(number: int, fmt: str) -> str:
        if fmt == "hex":
            return f"{number:X}"
        if fmt == "hexpad":
            return f"{number:08X}"
        if fmt == "hexlower":
            return f"{number:x}"
        if fmt == "uuid":
            return str(uuid.UUID(int=number))
        if fmt == "big":
            return str(10**19 + number)
        return str(number)

    def _throttled(self) -> bool:
        rate = self.behaviour.throttle_rate
        if rate is None:
            return False
        now = self.reactor.seconds()
        self._bucket_tokens = min(rate, self._bucket_tokens + (now - self._bucket_time) * rate)
        self._bucket_time = now
        if self._bucket_tokens >= 1:
            self._bucket_tokens -= 1
            return False
        return True

    def _submit_status(self, connection: SmscProtocol, pdu: Pdu, ordinal: int) -> int:
        behaviour = self.behaviour
        if behaviour.throttle_every and ordinal % behaviour.throttle_every == 0:
            return c.ESME_RTHROTTLED
        if self._throttled():
            return c.ESME_RTHROTTLED
        if behaviour.max_pending is not None and \
                connection.pending_responses >= behaviour.max_pending:
            return c.ESME_RMSGQFUL
        destination = pdu.get("destination_addr", "")
        return _longest_prefix(behaviour.submit_status_by_prefix, destination, c.ESME_ROK)

    def handle_submit(self, connection: SmscProtocol, pdu: Pdu) -> None:
        behaviour = self.behaviour
        ordinal = len(self.submits) + 1
        if behaviour.nack_every and ordinal % behaviour.nack_every == 0:
            self.submits.append(SubmitRecord(pdu, None, behaviour.nack_status,
                                             connection.system_id))
            connection.send(Pdu("generic_nack", pdu.sequence, behaviour.nack_status))
            return
        status = self._submit_status(connection, pdu, ordinal)
        message_id, number = self._new_id() if status == c.ESME_ROK else (None, 0)
        self.submits.append(SubmitRecord(pdu, message_id, status, connection.system_id,
                                         self.reactor.seconds(), connection.serial))
        if status == c.ESME_ROK:
            self._assemble(pdu)
        if ordinal in behaviour.swallow:
            return
        response = codec.response_to(pdu, status, message_id=message_id or "")
        wants_receipt = status == c.ESME_ROK and behaviour.receipts and \
            pdu.get("registered_delivery", 0) & 0x03
        if wants_receipt and behaviour.receipt_before_response is not None:
            self._send_receipts(connection, pdu, number)
            connection.pending_responses += 1
            self.reactor.callLater(behaviour.receipt_before_response, self._respond,
                                   connection, response)
            return
        if wants_receipt:
            self.reactor.callLater(behaviour.receipt_delay, self._send_receipts,
                                   connection, pdu, number)
        connection.pending_responses += 1
        if behaviour.respond_in_reverse:
            connection.held.append(response)
            if len(connection.held) >= behaviour.respond_in_reverse:
                held, connection.held = connection.held, []
                self.reactor.callLater(behaviour.response_delay, self._respond_all,
                                       connection, list(reversed(held)))
        elif behaviour.response_delay:
            self.reactor.callLater(behaviour.response_delay, self._respond, connection,
                                   response)
        else:
            self._respond(connection, response)

    def _respond(self, connection: SmscProtocol, response: Pdu) -> None:
        connection.pending_responses -= 1
        connection.send(response)

    def _respond_all(self, connection: SmscProtocol, responses: list[Pdu]) -> None:
        for response in responses:
            self._respond(connection, response)

    def release_held(self) -> None:
        """Answer every response held for reverse ordering, newest first."""
        for connection in self.connections:
            held, connection.held = connection.held, []
            self._respond_all(connection, list(reversed(held)))

    def _assemble(self, pdu: Pdu) -> None:
        try:
            fragment = fragment_from_pdu(pdu, self.behaviour.charset)
        except ValueError as exc:
            log.warning("fake SMSC cannot read a submit_sm: %s", exc)
            return
        fragment.source, fragment.destination = (pdu.get("source_addr", ""),
                                                 pdu.get("destination_addr", ""))
        message = self._reassembler.add(fragment, self.reactor.seconds())
        if message is not None:
            self.messages.append(AssembledMessage(message.source, message.destination,
                                                  message.text, message.parts))

    # Receipts ---------------------------------------------------------------------

    def _send_receipts(self, connection: SmscProtocol, submit: Pdu, number: int) -> None:
        behaviour = self.behaviour
        destination = submit.get("destination_addr", "")
        stat = _longest_prefix(behaviour.receipt_status_by_prefix, destination, "DELIVRD")
        if behaviour.intermediate_receipts:
            self._send_receipt(connection, submit, number, "ENROUTE")
        self._send_receipt(connection, submit, number, stat)

    def _send_receipt(self, connection: SmscProtocol, submit: Pdu, number: int,
                      stat: str) -> None:
        behaviour = self.behaviour
        receipt_id = self._format_id(number, behaviour.receipt_id_format or behaviour.id_format)
        text = receipts.format_text(receipt_id, stat,
                                    err="000" if stat == "DELIVRD" else "001")
        fields: dict[str, Any] = {
            "source_addr": submit.get("destination_addr", ""),
            "source_addr_ton": submit.get("dest_addr_ton", 0),
            "source_addr_npi": submit.get("dest_addr_npi", 0),
            "destination_addr": submit.get("source_addr", ""),
            "esm_class": c.ESM_TYPE_INTERMEDIATE if stat == "ENROUTE" else
            c.ESM_TYPE_SMSC_RECEIPT,
            "short_message": text.encode("ascii"),
        }
        if behaviour.receipt_tlvs:
            fields["receipted_message_id"] = receipt_id
            fields["message_state"] = receipts.message_state_for(
                behaviour.receipt_tlv_state or stat)
        self.receipts_sent += 1
        prefer = None if behaviour.receipts_round_robin else connection
        self.deliver(fields, system_id=connection.system_id, prefer=prefer)

    def deliver(self, fields: dict[str, Any], unknown_tlvs: list[tuple[int, bytes]] | None = None,
                system_id: str | None = None, prefer: SmscProtocol | None = None,
                command: str = "deliver_sm") -> int | None:
        """Send a deliver_sm to a receiving bind (stored until one binds). Returns its seq."""
        connection = self._receiver(system_id, prefer)
        pdu = Pdu(command, 0, 0, dict(fields), list(unknown_tlvs or []))
        if connection is None:
            self._stored.append((system_id or "", pdu))
            return None
        pdu.sequence = connection.next_sequence()
        if self.behaviour.redeliver_after is not None or self.behaviour.keep_unanswered:
            connection.sent_delivers[pdu.sequence] = pdu
        connection.send(pdu)
        return pdu.sequence

    def resend_deliver(self, pdu: Pdu) -> None:
        """A refused MO sent again, on whichever receiving bind is open then."""
        self.deliver(dict(pdu.fields), list(pdu.unknown_tlvs), command=pdu.command)

    def _receiver(self, system_id: str | None, prefer: SmscProtocol | None
                  ) -> SmscProtocol | None:
        if prefer is not None and prefer.open and prefer.can_receive:
            return prefer
        if self.behaviour.receipts_round_robin:
            ready = [connection for connection in self.connections
                     if connection.open and connection.can_receive and (
                         system_id is None or connection.system_id == system_id)]
            if ready:
                self._turn = (self._turn + 1) % len(ready)
                return ready[self._turn]
        for connection in self.connections:
            if connection.open and connection.can_receive and (
                    system_id is None or connection.system_id == system_id):
                return connection
        return None

    def flush_stored(self, connection: SmscProtocol) -> None:
        stored, self._stored = self._stored, []
        for system_id, pdu in stored:
            if system_id and system_id != connection.system_id:
                self._stored.append((system_id, pdu))
                continue
            pdu.sequence = connection.next_sequence()
            connection.send(pdu)

    # MO and faults ----------------------------------------------------------------

    def inject_mo(self, source: str, destination: str, text: str, *,
                  encoding: Encoding | None = None, split_mode: SplitMode = SplitMode.UDH,
                  order: list[int] | None = None, duplicate: list[int] | None = None,
                  reference: int = 7, unknown_tlvs: list[tuple[int, bytes]] | None = None,
                  esm_class: int = 0) -> list[int | None]:
        """Send a (possibly concatenated) MO; `order` and `duplicate` are 1-based part
        numbers to reorder or repeat parts. Returns the deliver_sm sequence numbers."""
        _info, parts = split(text, self.behaviour.charset, SplitPolicy(split_mode),
                             encoding, reference)
        numbers = order or list(range(1, len(parts) + 1))
        numbers += duplicate or []
        sequences = []
        for number in numbers:
            fields = dict(parts[number - 1])
            fields.update(source_addr=source, destination_addr=destination,
                          esm_class=fields.get("esm_class", 0) | esm_class)
            sequences.append(self.deliver(fields, unknown_tlvs))
        return sequences

    def send_enquire_link(self) -> list[int]:
        """An SMSC-side enquire_link on every bound connection; returns the sequences."""
        sequences = []
        for connection in self.bound_connections:
            sequence = connection.next_sequence()
            connection.send(Pdu("enquire_link", sequence))
            sequences.append(sequence)
        return sequences

    def broadcast_raw(self, data: bytes) -> None:
        for connection in list(self.connections):
            connection.send_raw(data)

    def unbind_all(self) -> None:
        for connection in list(self.connections):
            connection.send(Pdu("unbind", connection.next_sequence()))

    def drop_all(self) -> None:
        for connection in list(self.connections):
            connection.transport.loseConnection()

    @property
    def bound_connections(self) -> list[SmscProtocol]:
        return [conn for conn in self.connections if conn.bound_as is not None]


def _longest_prefix(table: dict[str, Any], number: str, default: Any) -> Any:
    best = None
    for prefix in table:
        if number.lstrip("+").startswith(prefix.lstrip("+")) and \
                (best is None or len(prefix) > len(best)):
            best = prefix
    return table[best] if best is not None else default
